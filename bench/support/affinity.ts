import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';

/**
 * CPU pinning, so the process under test never shares a core with Redis or the publisher:
 * the bench process (and so everything it forks or spawns: redis-server, publisher, clients)
 * runs on cores 0..n-2, the subscriber under test on core n-1. Off with BENCH_PIN=0, and
 * a no-op on a single core or where taskset (util-linux) is missing.
 */
const count = cpus().length;
let available: boolean | undefined;

function enabled(): boolean {
  if (process.env.BENCH_PIN === '0' || count < 2 || process.platform !== 'linux') return false;
  if (available === undefined) {
    try {
      execFileSync('taskset', ['-V'], { stdio: 'ignore' });
      available = true;
    } catch {
      available = false;
    }
  }
  return available;
}

export const SUT_CPUS = `${count - 1}`;
export const OTHER_CPUS = count > 2 ? `0-${count - 2}` : '0';
export const ALL_CPUS = `0-${count - 1}`;

/** Sets the affinity of every thread of `pid`; returns false when pinning is off or failed. */
export function pin(pid: number | undefined, cpuList: string): boolean {
  if (!pid || !enabled()) return false;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function pinningDescription(): string {
  return enabled()
    ? `subscriber under test pinned to core ${SUT_CPUS}; Redis, publisher and bench process on core(s) ${OTHER_CPUS} (taskset)`
    : 'no CPU pinning';
}
