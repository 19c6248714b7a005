import type { MessageHandler } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer } from '../../lib/index.js';
import { durableKeys } from '../../lib/delivery/durable-stream.js';
import { FaultProxy } from '../../test/harness/fault-proxy.js';
import { waitFor } from '../../test/harness/wait.js';
import type { BenchContext } from '../support/context.js';
import { latencySummary, median, type LatencySummary } from '../support/stats.js';

const PLAIN = 'bench.delivery.plain';
const DURABLE = 'bench.delivery.durable';
/** Measured alone: no subscriber, a stream of its own. */
const MEMORY = 'bench.delivery.memory';
/** Emits in flight at once in the throughput runs (the client pipelines them on one connection). */
const WINDOW = 500;

export interface DeliveryResult {
  note: string;
  throughput: {
    events: number;
    rounds: number;
    /** events/s until every emit() resolved (Redis accepted them), median of the rounds */
    plain: { publishRate: number; runs: number[] };
    durable: { publishRate: number; runs: number[] };
    /** durable / plain */
    ratio: number;
  };
  latency: { rate: number; events: number; plain: LatencySummary; durable: LatencySummary };
  memory: Array<{ dataBytes: number; events: number; streamBytes: number; bytesPerEvent: number; usedMemoryDeltaPerEvent: number }>;
  recovery: Array<{ missed: number; recoveryMs: number; reconnectToAllHandledMs: number }>;
}

/** A server with a plain and a durable handler that records send -> handle latency (same process, hrtime). */
async function startServer(url: string, onEvent: (channel: string, sentAt: number) => void): Promise<RedisPubSubServer> {
  const server = new RedisPubSubServer({ url, name: 'bench-delivery-server' });
  for (const [channel, durable] of [[PLAIN, false], [DURABLE, true]] as const) {
    const handler = Object.assign(async (data: { t: number }) => onEvent(channel, data.t), { isEventHandler: true, extras: { durable } }) as unknown as MessageHandler;
    server.addHandler(channel, handler, true, { durable });
  }
  await new Promise<void>((resolve, reject) => server.listen((error?: unknown) => (error ? reject(error as Error) : resolve())));
  return server;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

export async function delivery(ctx: BenchContext): Promise<DeliveryResult> {
  const events = ctx.quick ? 5_000 : 40_000;
  const rounds = ctx.quick ? 1 : 3;
  const url = ctx.redis.url;
  const handled = { [PLAIN]: 0, [DURABLE]: 0 } as Record<string, number>;
  let latencies: number[] = [];
  const server = await startServer(url, (channel, sentAt) => {
    handled[channel]++;
    latencies.push(now() - sentAt);
  });
  const client = new RedisPubSubClient({ url, name: 'bench-delivery-client', durable: { [DURABLE]: { maxLen: 1_000_000 }, [MEMORY]: { maxLen: 1_000_000 } } });
  await client.connect();
  const result: DeliveryResult = {
    note: 'client and server in one process on the shared redis-server; same run, alternating plain and durable rounds',
    throughput: { events, rounds, plain: { publishRate: 0, runs: [] }, durable: { publishRate: 0, runs: [] }, ratio: 0 },
    latency: { rate: 0, events: 0, plain: latencySummary([]), durable: latencySummary([]) },
    memory: [],
    recovery: [],
  };
  try {
    // Throughput: as fast as the client can have Redis accept them, WINDOW emits in flight.
    for (let round = 0; round < rounds; round++) {
      for (const channel of round % 2 === 0 ? [PLAIN, DURABLE] : [DURABLE, PLAIN]) {
        const before = handled[channel];
        const started = now();
        let next = 0;
        const worker = async () => {
          while (next < events) {
            next++;
            await firstValueFrom(client.emit(channel, { t: now() }));
          }
        };
        await Promise.all(Array.from({ length: WINDOW }, worker));
        const rate = events / ((now() - started) / 1000);
        await waitFor(() => handled[channel] - before >= events, { timeoutMs: 120_000, message: `${channel} handled` });
        (channel === PLAIN ? result.throughput.plain : result.throughput.durable).runs.push(rate);
        ctx.log(`delivery: ${channel === PLAIN ? 'plain' : 'durable'} round ${round + 1}: ${Math.round(rate)} events/s accepted`);
      }
    }
    result.throughput.plain.publishRate = median(result.throughput.plain.runs);
    result.throughput.durable.publishRate = median(result.throughput.durable.runs);
    result.throughput.ratio = result.throughput.durable.publishRate / result.throughput.plain.publishRate;

    // Latency at a steady rate, well below saturation: one event every ms for a few seconds, per kind.
    const rate = 1_000;
    const perKind = ctx.quick ? 2_000 : 5_000;
    result.latency.rate = rate;
    result.latency.events = perKind;
    for (const channel of [PLAIN, DURABLE]) {
      latencies = [];
      const before = handled[channel];
      const started = now();
      for (let i = 0; i < perKind; i++) {
        const due = started + i;
        const wait = due - now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
        void firstValueFrom(client.emit(channel, { t: now() }));
      }
      await waitFor(() => handled[channel] - before >= perKind, { timeoutMs: 60_000, message: `${channel} latency run handled` });
      result.latency[channel === PLAIN ? 'plain' : 'durable'] = latencySummary(latencies);
    }

    // Redis memory per retained event, for two payload sizes.
    for (const dataBytes of [100, 1_000]) {
      const retained = ctx.quick ? 5_000 : 20_000;
      await ctx.admin.del(durableKeys(MEMORY).stream, durableKeys(MEMORY).meta);
      const usedBefore = Number(/used_memory:(\d+)/.exec(await ctx.admin.info('memory'))![1]);
      const pad = 'x'.repeat(dataBytes);
      for (let i = 0; i < retained; i += WINDOW) {
        await Promise.all(Array.from({ length: Math.min(WINDOW, retained - i) }, () => firstValueFrom(client.emit(MEMORY, { t: now(), pad }))));
      }
      const usedAfter = Number(/used_memory:(\d+)/.exec(await ctx.admin.info('memory'))![1]);
      const streamBytes = Number(await ctx.admin.call('MEMORY', 'USAGE', durableKeys(MEMORY).stream, 'SAMPLES', '0'));
      result.memory.push({
        dataBytes,
        events: retained,
        streamBytes,
        bytesPerEvent: streamBytes / retained,
        usedMemoryDeltaPerEvent: (usedAfter - usedBefore) / retained,
      });
      ctx.log(`delivery: ${dataBytes} B payload: ${Math.round(streamBytes / retained)} B of stream per retained event`);
    }
    await ctx.admin.del(durableKeys(MEMORY).stream, durableKeys(MEMORY).meta);
  } finally {
    await client.close();
    await server.close();
    await ctx.admin.del(durableKeys(DURABLE).stream, durableKeys(DURABLE).meta);
  }

  // Time to recover N missed events: a subscriber cut off (proxy refuses) while N are published.
  const proxy = await FaultProxy.start({ host: ctx.redis.host, port: ctx.redis.port });
  const publisher = new RedisPubSubClient({ url, name: 'bench-delivery-publisher', durable: { [DURABLE]: { maxLen: 1_000_000 } } });
  let count = 0;
  const cutOff = await startServer(proxy.url, (channel) => channel === DURABLE && count++);
  let recovered: { durationMs: number } | undefined;
  let resubscribedAt = 0;
  cutOff.on('recovered', (info) => info.replayed > 0 && (recovered = info));
  cutOff.on('resubscribed', () => (resubscribedAt = now()));
  try {
    await publisher.connect();
    await firstValueFrom(publisher.emit(DURABLE, { t: now() }));
    await waitFor(() => count === 1, { message: 'first event' });
    for (const missed of ctx.quick ? [1_000, 10_000] : [1_000, 10_000, 100_000]) {
      count = 0;
      recovered = undefined;
      proxy.refuse(true);
      proxy.reset();
      await waitFor(() => cutOff.getStats().state === 'reconnecting', { message: 'cut off' });
      for (let i = 0; i < missed; i += WINDOW) {
        await Promise.all(Array.from({ length: Math.min(WINDOW, missed - i) }, () => firstValueFrom(publisher.emit(DURABLE, { t: now() }))));
      }
      proxy.refuse(false);
      await waitFor(() => count >= missed && recovered !== undefined, { timeoutMs: 120_000, message: `${missed} recovered` });
      const allHandledAt = now();
      result.recovery.push({ missed, recoveryMs: recovered!.durationMs, reconnectToAllHandledMs: allHandledAt - resubscribedAt });
      ctx.log(`delivery: recovered ${missed} missed events in ${recovered!.durationMs} ms`);
    }
  } finally {
    await publisher.close();
    await cutOff.close();
    await proxy.close();
    await ctx.admin.del(durableKeys(DURABLE).stream, durableKeys(DURABLE).meta);
  }
  ctx.log(
    `delivery: plain ${Math.round(result.throughput.plain.publishRate)} events/s, durable ${Math.round(result.throughput.durable.publishRate)} events/s (x${result.throughput.ratio.toFixed(2)})`,
  );
  return result;
}
