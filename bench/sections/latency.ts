import { delay } from '../../test/harness/wait.js';
import { EVENT_CONTENDERS, type Contender } from '../support/contenders.js';
import { fmtInt, rotate, startApp, waitSubscribers, type BenchContext } from '../support/context.js';
import { EVENT_CHANNEL } from '../support/payloads.js';
import { latencySummary, type LatencySummary } from '../support/stats.js';
import { Worker } from '../support/worker.js';
import { burstRun } from './throughput.js';

export interface LatencyRun {
  rate: number;
  /** per round */
  durationMs: number;
  rounds: number;
  sent: number;
  handled: number;
  /** publish-to-handler latency (ms) from each message's intended send time, all rounds pooled */
  latency: LatencySummary;
  /** p99 of each round on its own: how much the rounds disagree */
  p99PerRound: number[];
  /** from the actual send instead (intended + publisher lateness): what Redis + the subscriber add */
  service: LatencySummary;
  /** how late the publisher itself sent (ms), worst round: the floor under every contender's numbers */
  publisherLag: LatencySummary;
  /** worst round: last message handled this long (ms) after its intended send time; > 250 ms means a backlog built up */
  drainMs: number;
  keptUp: boolean;
  /** lowest rate actually handled in a round (events/s) */
  handledRate: number;
}

export interface LatencyResult {
  rates: number[];
  rounds: number;
  contenders: Array<{ id: string; label: string; runs: LatencyRun[] }>;
}

const KEEP_UP_DRAIN_MS = 250;

interface OneRun {
  sent: number;
  handled: number;
  values: number[];
  serviceValues: number[];
  lag: LatencySummary;
  drainMs: number;
  handledRate: number;
  keptUp: boolean;
}

let runIds = 0;

async function rateRun(app: Worker, publisher: Worker, rate: number, durationMs: number, record: boolean): Promise<OneRun> {
  const run = ++runIds;
  const n = Math.round((rate * durationMs) / 1000);
  await app.request('arm', { n, latencyRun: record ? run : undefined });
  const sent = await publisher.request<{ sent: number; lastIntendedNs: number; firstIntendedNs: number; lag: LatencySummary }>(
    'rate',
    { rate, durationMs, run },
    durationMs + 60_000,
  );
  // Drain: wait for every message, giving up when nothing arrives for 5 s (or after 60 s in all).
  let last = -1;
  let lastChange = Date.now();
  const deadline = Date.now() + 60_000;
  let progress = await app.request<{ count: number; firstNs: number; lastNs: number }>('progress');
  while (progress.count < n && Date.now() < deadline && Date.now() - lastChange < 5_000) {
    await delay(50);
    progress = await app.request('progress');
    if (progress.count !== last) {
      last = progress.count;
      lastChange = Date.now();
    }
  }
  const lat = record
    ? await app.request<{ lastRecvNs: number; values: number[]; serviceValues: number[] }>('latencies', { values: true })
    : { lastRecvNs: progress.lastNs, values: [], serviceValues: [] };
  const drainMs = (lat.lastRecvNs - sent.lastIntendedNs) / 1e6;
  return {
    sent: sent.sent,
    handled: progress.count,
    values: lat.values,
    serviceValues: lat.serviceValues,
    lag: sent.lag,
    drainMs,
    handledRate: progress.count / ((lat.lastRecvNs - sent.firstIntendedNs) / 1e9),
    keptUp: progress.count === n && drainMs < KEEP_UP_DRAIN_MS,
  };
}

export async function latency(ctx: BenchContext, contenders: Contender[] = EVENT_CONTENDERS): Promise<LatencyResult> {
  const rates = [1_000, 10_000, 50_000];
  const rounds = ctx.quick ? 1 : 3;
  const durationOf = (rate: number) => (ctx.quick ? 600 : rate <= 1_000 ? 3_000 : rate <= 10_000 ? 2_000 : 1_500);
  const { host, port } = ctx.redis;
  const publisher = new Worker('publisher', 'publisher', { host, port });
  await publisher.waitReady();
  const runs = new Map<string, Map<number, OneRun[]>>(contenders.map((c) => [c.id, new Map(rates.map((r) => [r, []]))]));
  try {
    // Rounds of fresh processes, contender order rotated: a noisy minute hits every contender.
    for (let round = 0; round < rounds; round++) {
      for (const contender of rotate(contenders, round)) {
        const app = startApp(contender, host, port);
        try {
          await app.waitReady();
          await waitSubscribers(ctx.admin, EVENT_CHANNEL, 1);
          await burstRun(app, publisher, 'small', ctx.quick ? 10_000 : 30_000); // JIT warm-up
          for (const rate of rates) {
            await rateRun(app, publisher, rate, ctx.quick ? 250 : 500, false); // settle at this rate
            const r = await rateRun(app, publisher, rate, durationOf(rate), true);
            runs.get(contender.id)!.get(rate)!.push(r);
            const s = latencySummary(r.values);
            ctx.log(
              `latency round ${round + 1}/${rounds} ${contender.id} @ ${fmtInt(rate)}/s: p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} ` +
                `p99.9 ${s.p999.toFixed(2)} max ${s.max.toFixed(1)} ms` +
                (r.keptUp ? '' : ` -- CANNOT KEEP UP: handled ${fmtInt(r.handledRate)}/s, ${r.handled}/${r.sent}, drain ${fmtInt(r.drainMs)} ms`),
            );
          }
        } finally {
          await app.stop();
        }
        await waitSubscribers(ctx.admin, EVENT_CHANNEL, 0);
      }
    }
  } finally {
    await publisher.stop();
  }
  return {
    rates,
    rounds,
    contenders: contenders.map((c) => ({
      id: c.id,
      label: c.label,
      runs: rates.map((rate): LatencyRun => {
        const rs = runs.get(c.id)!.get(rate)!;
        const worstLag = rs.map((r) => r.lag).sort((a, b) => b.p99 - a.p99)[0]!;
        return {
          rate,
          durationMs: durationOf(rate),
          rounds: rs.length,
          sent: rs.reduce((a, r) => a + r.sent, 0),
          handled: rs.reduce((a, r) => a + r.handled, 0),
          latency: latencySummary(rs.flatMap((r) => r.values)),
          p99PerRound: rs.map((r) => latencySummary(r.values).p99),
          service: latencySummary(rs.flatMap((r) => r.serviceValues)),
          publisherLag: worstLag,
          drainMs: Math.max(...rs.map((r) => r.drainMs)),
          keptUp: rs.every((r) => r.keptUp),
          handledRate: Math.min(...rs.map((r) => r.handledRate)),
        };
      }),
    })),
  };
}
