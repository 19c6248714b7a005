import { delay } from '../../test/harness/wait.js';
import { THROUGHPUT_CONTENDERS, type Contender } from '../support/contenders.js';
import { fmtInt, rotate, startApp, waitSubscribers, type BenchContext } from '../support/context.js';
import { EVENT_CHANNEL, SIZES, type SizeName } from '../support/payloads.js';
import { spread, type Spread } from '../support/stats.js';
import { Worker } from '../support/worker.js';

export interface RunOutcome {
  /** events/s at the handler, first to last message */
  rate: number;
  handled: number;
  sent: number;
  /** events/s the publisher achieved (Redis accepted) in the same run */
  publishRate: number;
  /** events per CPU-second of the subscriber process: what it costs, whatever else the machine runs */
  cpuRate: number;
  lost: boolean;
}

export interface ThroughputResult {
  messages: Record<SizeName, number>;
  warmup: Record<SizeName, number>;
  rounds: number;
  contenders: Array<{ id: string; label: string; sizes: Record<SizeName, Spread & { cpu: Spread; runsDetail: RunOutcome[] }> }>;
}

/**
 * Sends `n` events and waits for the app to handle them; a run that stalls for `stallMs` reports what arrived.
 * `freeze`: the subscriber process is stopped (SIGSTOP) while the publisher sends the whole run, so
 * Redis buffers it, then continued (SIGCONT): the run measures how fast the subscriber drains the
 * backlog, with no publisher competing for the CPU. Timers are frozen with the process, so
 * heartbeats see a stalled event loop, not a dead connection.
 */
export async function burstRun(app: Worker, publisher: Worker, size: SizeName, n: number, { stallMs = 10_000, freeze = false } = {}): Promise<RunOutcome> {
  const cpuBefore = await app.request<NodeJS.CpuUsage>('cpu');
  await app.request('arm', { n });
  let finished = false;
  const waited = app.request('wait', undefined, 24 * 3600_000).then((r) => ((finished = true), r));
  waited.catch(() => undefined);
  let published: { sent: number; elapsedMs: number };
  if (freeze) app.child.kill('SIGSTOP');
  try {
    published = await publisher.request<{ sent: number; elapsedMs: number }>('burst', { size, n });
  } finally {
    if (freeze) app.child.kill('SIGCONT');
  }
  let last = -1;
  let lastChange = Date.now();
  let result: { count: number; firstNs: number; lastNs: number } | undefined;
  while (!finished) {
    const tick = await Promise.race([waited, delay(500).then(() => undefined)]);
    if (tick) break;
    const progress = await app.request<{ count: number; firstNs: number; lastNs: number }>('progress');
    if (progress.count !== last) {
      last = progress.count;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > stallMs) {
      result = progress;
      break;
    }
  }
  const final = result ?? (await waited);
  const cpuAfter = await app.request<NodeJS.CpuUsage>('cpu');
  const cpuSeconds = (cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) / 1e6;
  const seconds = (final.lastNs - final.firstNs) / 1e9;
  return {
    rate: final.count > 1 ? (final.count - 1) / seconds : 0,
    handled: final.count,
    sent: published.sent,
    publishRate: published.sent / (published.elapsedMs / 1000),
    cpuRate: final.count / cpuSeconds,
    lost: final.count < n,
  };
}

export async function throughput(ctx: BenchContext, contenders: Contender[] = THROUGHPUT_CONTENDERS, roundsOverride?: number): Promise<ThroughputResult> {
  const messages: Record<SizeName, number> = ctx.quick ? { small: 40_000, large: 8_000 } : { small: 250_000, large: 40_000 };
  const warmup: Record<SizeName, number> = ctx.quick ? { small: 10_000, large: 2_000 } : { small: 30_000, large: 6_000 };
  const rounds = roundsOverride ?? (ctx.quick ? 1 : 5);
  const runs = await measureRounds(ctx, contenders, Object.keys(SIZES) as SizeName[], rounds, messages, warmup);
  return {
    messages,
    warmup,
    rounds,
    contenders: contenders.map((c) => {
      const r = runs.get(c.id)!;
      const sizes = {} as Record<SizeName, Spread & { cpu: Spread; runsDetail: RunOutcome[] }>;
      for (const size of Object.keys(SIZES) as SizeName[]) {
        sizes[size] = { ...spread(r[size].map((o) => o.rate)), cpu: spread(r[size].map((o) => o.cpuRate)), runsDetail: r[size] };
      }
      return { id: c.id, label: c.label, sizes };
    }),
  };
}

/**
 * `rounds` runs of every contender at each size; per contender and size, the outcomes in round
 * order (so round i of one contender pairs with round i of another).
 */
export async function measureRounds(
  ctx: BenchContext,
  contenders: Contender[],
  sizes: SizeName[],
  rounds: number,
  messages: Record<SizeName, number>,
  warmup: Record<SizeName, number>,
): Promise<Map<string, Record<SizeName, RunOutcome[]>>> {
  const { host, port } = ctx.redis;
  const publisher = new Worker('publisher', 'publisher', { host, port });
  await publisher.waitReady();
  const runs = new Map<string, Record<SizeName, RunOutcome[]>>();
  for (const c of contenders) runs.set(c.id, { small: [], large: [] });
  try {
    for (const size of sizes) {
      for (let round = 0; round < rounds; round++) {
        // A fresh subscriber process per run, contender order rotated per round, so drift on a
        // noisy machine spreads over all contenders instead of hitting one.
        for (const contender of rotate(contenders, round)) {
          const app = startApp(contender, host, port);
          try {
            await app.waitReady();
            await waitSubscribers(ctx.admin, EVENT_CHANNEL, 1);
            await burstRun(app, publisher, size, warmup[size], { freeze: true });
            const outcome = await burstRun(app, publisher, size, messages[size], { freeze: true });
            runs.get(contender.id)![size].push(outcome);
            ctx.log(
              `throughput ${size} round ${round + 1}/${rounds} ${contender.id}: ${fmtInt(outcome.rate)} ev/s, ${fmtInt(outcome.cpuRate)} ev/CPU-s` +
                ` (publisher ${fmtInt(outcome.publishRate)}/s${outcome.lost ? `, LOST: ${outcome.handled}/${outcome.sent}` : ''})`,
            );
          } finally {
            await app.stop();
          }
          await waitSubscribers(ctx.admin, EVENT_CHANNEL, 0);
        }
      }
    }
  } finally {
    await publisher.stop();
  }
  return runs;
}
