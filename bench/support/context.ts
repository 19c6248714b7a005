import { appendFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { RedisServerHandle } from '../../test/harness/redis.js';
import { delay } from '../../test/harness/wait.js';
import { ALL_CPUS, pin, SUT_CPUS } from './affinity.js';
import type { Contender } from './contenders.js';
import { Worker } from './worker.js';

export interface BenchContext {
  quick: boolean;
  /** The redis-server every section but recovery uses (pub/sub output buffer limit off). */
  redis: RedisServerHandle;
  /** Admin connection to `redis` (PUBSUB NUMSUB, INFO, CLIENT LIST). */
  admin: Redis;
  /** Where --cpu-prof output goes. */
  profileDir: string;
  log(message: string): void;
  /** Records a redis-server pid so scripts/bench.sh can kill it if this process dies hard. */
  trackPid(pid: number | undefined): void;
}

export function pidTracker(file: string | undefined): (pid: number | undefined) => void {
  return (pid) => {
    if (file && pid) appendFileSync(file, `${pid}\n`);
  };
}

/**
 * Forks a contender's subscriber process. `cpus`: 'sut' pins it alone on the last core (the
 * process under test), 'all' lets it run anywhere (recovery: many idle processes at once).
 */
export function startApp(
  contender: Contender,
  host: string,
  port: number,
  extra: Record<string, unknown> = {},
  execArgv: string[] = [],
  cpus: 'sut' | 'all' = 'sut',
): Worker {
  const worker = new Worker(contender.id, 'app', { ...contender.app, host, port, ...extra }, execArgv);
  pin(worker.pid, cpus === 'sut' ? SUT_CPUS : ALL_CPUS);
  return worker;
}

/** Waits until exactly `n` clients are subscribed to `channel` on the server `admin` talks to. */
export async function waitSubscribers(admin: Redis, channel: string, n: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reply = (await admin.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
    if (Number(reply[1]) === n) return;
    if (Date.now() > deadline) throw new Error(`expected ${n} subscriber(s) on "${channel}", Redis reports ${reply[1]}`);
    await delay(10);
  }
}

export function rotate<T>(items: T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}
