import type { Redis } from 'ioredis';
import { delay } from '../../test/harness/wait.js';
import { EVENT_CONTENDERS, type Contender } from '../support/contenders.js';
import { fmtInt, startApp, waitSubscribers, type BenchContext } from '../support/context.js';
import { EVENT_CHANNEL } from '../support/payloads.js';
import { median } from '../support/stats.js';
import { Worker } from '../support/worker.js';
import { burstRun } from './throughput.js';

export interface CostOutcome {
  id: string;
  label: string;
  connections: { count: number; names: string[] };
  idle: {
    seconds: number;
    /** median of the 2 s buckets (steady state) */
    cpuMsPerSecond: number;
    cpuPercent: number;
    /** whole window, including V8's one-off post-start-up GCs */
    cpuMsPerSecondMean: number;
    bucketsMsPerSecond: number[];
    commandsPerSecond: number;
    commands: Record<string, number>;
  };
  memory: {
    /** RSS / heap (MiB) after start-up + idle, before any event */
    before: { rss: number; heapUsed: number };
    /** after each run of `eventsPerRun` events (GC forced before reading) */
    afterRuns: Array<{ events: number; rss: number; heapUsed: number }>;
    eventsPerRun: number;
  };
}

export interface CostResult {
  idleSeconds: number;
  contenders: CostOutcome[];
}

interface ClientEntry {
  id: string;
  name: string;
  addr: string;
}

async function clientList(admin: Redis): Promise<ClientEntry[]> {
  const text = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) + String(await admin.call('CLIENT', 'LIST', 'TYPE', 'normal'));
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const fields = Object.fromEntries(line.split(' ').map((kv) => kv.split('=', 2) as [string, string]));
      return { id: fields.id ?? '', name: fields.name ?? '', addr: fields.addr ?? '' };
    });
}

async function commandStats(admin: Redis): Promise<{ total: number; perCommand: Record<string, number> }> {
  // One round trip for both, so the measurement costs a known single command.
  const text = String(await admin.info('everything'));
  const total = Number(/total_commands_processed:(\d+)/.exec(text)?.[1] ?? NaN);
  const perCommand: Record<string, number> = {};
  for (const m of text.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) perCommand[m[1]!] = Number(m[2]);
  return { total, perCommand };
}

const MiB = 1024 * 1024;
const BUCKET_S = 2;

export async function cost(ctx: BenchContext, contenders: Contender[] = EVENT_CONTENDERS): Promise<CostResult> {
  const idleSeconds = ctx.quick ? 2 : 14;
  const runs = 5;
  const eventsPerRun = ctx.quick ? 20_000 : 200_000;
  const { host, port } = ctx.redis;
  const out: CostOutcome[] = [];
  for (const contender of contenders) {
    const before = new Set((await clientList(ctx.admin)).map((c) => c.id));
    const app = startApp(contender, host, port, {}, ['--expose-gc']);
    let publisher: Worker | undefined;
    try {
      await app.waitReady();
      await waitSubscribers(ctx.admin, EVENT_CHANNEL, 1);
      await delay(1_000);
      const mine = (await clientList(ctx.admin)).filter((c) => !before.has(c.id));

      // Idle: only this app is connected besides our admin connection.
      // CPU in 2 s buckets: the median bucket is the steady idle cost; V8's memory reducer runs a
      // one-off burst of GCs ~8 s after start-up (any Node process, ~20-60 ms), which the mean includes.
      const s0 = await commandStats(ctx.admin);
      const c0 = await app.request<NodeJS.CpuUsage>('cpu');
      const t0 = process.hrtime.bigint();
      const buckets: number[] = [];
      let prev = c0;
      let prevT = t0;
      for (let b = 0; b < idleSeconds / BUCKET_S; b++) {
        await delay(BUCKET_S * 1_000);
        const cur = await app.request<NodeJS.CpuUsage>('cpu');
        const now = process.hrtime.bigint();
        buckets.push((cur.user - prev.user + cur.system - prev.system) / 1e3 / (Number(now - prevT) / 1e9));
        prev = cur;
        prevT = now;
      }
      const c1 = prev;
      const s1 = await commandStats(ctx.admin);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpuMs = (c1.user - c0.user + c1.system - c0.system) / 1e3;
      const steady = median(buckets);
      const commands: Record<string, number> = {};
      for (const [name, calls] of Object.entries(s1.perCommand)) {
        const delta = calls - (s0.perCommand[name] ?? 0) - (name === 'info' ? 1 : 0);
        if (delta > 0) commands[name] = delta;
      }
      const idleCommands = Object.values(commands).reduce((a, b) => a + b, 0);

      const m0 = await app.request('memory', { gc: true });
      publisher = new Worker('publisher', 'publisher', { host, port });
      await publisher.waitReady();
      const afterRuns: CostOutcome['memory']['afterRuns'] = [];
      let events = 0;
      for (let r = 0; r < runs; r++) {
        const outcome = await burstRun(app, publisher, 'small', eventsPerRun);
        events += outcome.handled;
        const m = await app.request('memory', { gc: true });
        afterRuns.push({ events, rss: m.rss / MiB, heapUsed: m.heapUsed / MiB });
      }
      const outcome: CostOutcome = {
        id: contender.id,
        label: contender.label,
        connections: { count: mine.length, names: mine.map((c) => c.name || '(no name)') },
        idle: {
          seconds,
          cpuMsPerSecond: steady,
          cpuPercent: (steady / 1000) * 100,
          cpuMsPerSecondMean: cpuMs / seconds,
          bucketsMsPerSecond: buckets.map((b) => Math.round(b * 100) / 100),
          commandsPerSecond: idleCommands / seconds,
          commands,
        },
        memory: { before: { rss: m0.rss / MiB, heapUsed: m0.heapUsed / MiB }, afterRuns, eventsPerRun },
      };
      out.push(outcome);
      const last = afterRuns[afterRuns.length - 1]!;
      ctx.log(
        `cost ${contender.id}: ${mine.length} connection(s) [${outcome.connections.names.join(', ')}], idle CPU ${outcome.idle.cpuMsPerSecond.toFixed(2)} ms/s (mean ${outcome.idle.cpuMsPerSecondMean.toFixed(2)}), ` +
          `${outcome.idle.commandsPerSecond.toFixed(2)} Redis cmd/s ${JSON.stringify(commands)}, RSS ${m0.rss / MiB | 0} -> ` +
          `${afterRuns.map((a) => (a.rss | 0)).join(' / ')} MiB after ${fmtInt(last.events)} events (heap ${last.heapUsed.toFixed(1)} MiB)`,
      );
    } finally {
      await Promise.all([app.stop(), publisher?.stop()]);
    }
    await waitSubscribers(ctx.admin, EVENT_CHANNEL, 0);
  }
  return { idleSeconds, contenders: out };
}
