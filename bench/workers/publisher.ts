/**
 * The publisher every contender gets: one plain ioredis connection, pipelined PUBLISHes of the
 * same pre-built Nest envelopes on `bench.event`. Also publishes at fixed rates for the latency
 * section, each message carrying its intended send time (CLOCK_MONOTONIC ns).
 */
import { Redis, type ChainableCommander } from 'ioredis';
import { config, emitToParent, nowNs, serve } from '../support/ipc.js';
import { EVENT_CHANNEL, eventPool, latencyMessage, type SizeName } from '../support/payloads.js';
import { latencySummary } from '../support/stats.js';

interface PublisherConfig {
  host: string;
  port: number;
}

const cfg = config<PublisherConfig>();
const redis = new Redis({ host: cfg.host, port: cfg.port, lazyConnect: true });
redis.on('error', () => undefined);
const pools: Partial<Record<SizeName, string[]>> = {};

serve({
  /** Publishes `n` events as fast as Redis takes them: batches of `batch`, up to `inflight` batches outstanding. */
  async burst({ size, n, batch = 500, inflight = 4 }: { size: SizeName; n: number; batch?: number; inflight?: number }) {
    const pool = (pools[size] ??= eventPool(size));
    const startNs = nowNs();
    const outstanding = new Set<Promise<unknown>>();
    let sent = 0;
    while (sent < n) {
      const pipeline = redis.pipeline();
      const end = Math.min(n, sent + batch);
      for (; sent < end; sent++) pipeline.publish(EVENT_CHANNEL, pool[sent % pool.length]!);
      const done: Promise<unknown> = pipeline.exec().finally(() => outstanding.delete(done));
      outstanding.add(done);
      if (outstanding.size >= inflight) await Promise.race(outstanding);
    }
    await Promise.all(outstanding);
    return { sent, elapsedMs: (nowNs() - startNs) / 1e6 };
  },

  /**
   * Publishes at a fixed `rate` for `durationMs`: message i is due at start + i/rate and carries
   * that intended time, so a late send (or a slow subscriber) shows up as latency (no coordinated
   * omission). Timers tick at >= 1 ms, so due messages go out in small pipelined groups; the
   * publisher's own lateness is returned as `lag`.
   */
  rate({ rate, durationMs, run }: { rate: number; durationMs: number; run: number }) {
    const n = Math.round((rate * durationMs) / 1000);
    const intervalNs = 1e9 / rate;
    const lags = new Float64Array(n);
    const startNs = nowNs() + 2e6;
    let i = 0;
    return new Promise((resolve) => {
      const tick = () => {
        const now = nowNs();
        let pipeline: ChainableCommander | undefined;
        while (i < n) {
          const intended = startNs + i * intervalNs;
          if (intended > now) break;
          const lateUs = Math.round((now - intended) / 1e3);
          (pipeline ??= redis.pipeline()).publish(EVENT_CHANNEL, latencyMessage(run, i, Math.round(intended), lateUs));
          lags[i] = lateUs / 1e3;
          i++;
        }
        void pipeline?.exec();
        if (i >= n) {
          resolve({ sent: n, firstIntendedNs: startNs, lastIntendedNs: startNs + (n - 1) * intervalNs, lag: latencySummary(lags) });
          return;
        }
        setTimeout(tick, Math.max(0, (startNs + i * intervalNs - nowNs()) / 1e6));
      };
      setTimeout(tick, 1);
    });
  },

  exit() {
    setImmediate(() => process.exit(0));
    return true;
  },
});

redis.connect().then(
  () => emitToParent('ready', { pid: process.pid }),
  (error: Error) => {
    emitToParent('fatal', error.message);
    setTimeout(() => process.exit(1), 100);
  },
);
