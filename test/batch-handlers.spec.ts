import type { Redis } from 'ioredis';
import type { MessageHandler } from '@nestjs/microservices';
import { BatchDispatcher, batchSettings, type BatchHost } from '../lib/batch-dispatcher.js';
import { CaptureLogger } from './support/capture-logger.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { RedisPubSubBatchContext, RedisPubSubContext } from '../lib/index.js';
import { startBatchApp, type StartedBatchApp } from './support/batch-app.js';
import { InMemoryTelemetry } from './support/otel.js';
import { SpanStatusCode } from '@opentelemetry/api';

/** Publishes every message in one MULTI: Redis writes them to a subscriber in one go, so they arrive in one socket read. */
async function publishAtOnce(publisher: Redis, messages: Array<[channel: string, payload: string | Buffer]>): Promise<void> {
  const multi = publisher.multi();
  for (const [channel, payload] of messages) multi.publish(channel, payload);
  await multi.exec();
}

const envelope = (data: unknown, metadata?: Record<string, unknown>) => JSON.stringify({ pattern: 'x', data, ...(metadata ? { metadata } : {}) });

describe('batch handlers', () => {
  let redis: RedisServerHandle;
  let app: StartedBatchApp;
  let publisher: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    app = await startBatchApp({ url: redis.url });
    publisher = await connectClient(redis.url);
  });

  afterAll(async () => {
    await closeClient(publisher);
    await app?.close();
    await redis?.stop();
  });

  afterEach(() => app.state.open());

  it('relies on ioredis emitting every message of one socket read synchronously, before process.nextTick', async () => {
    // Batches are "what has already arrived": the dispatcher flushes on process.nextTick. If ioredis
    // ever deferred its emits, batches would silently shrink to single messages: this pins it.
    const subscriber = await connectClient(redis.url);
    try {
      let count = 0;
      let seenBeforeTick = 0;
      subscriber.on('messageBuffer', () => {
        if (count++ === 0) process.nextTick(() => (seenBeforeTick = count));
      });
      await subscriber.subscribe('pin');
      await publishAtOnce(publisher, Array.from({ length: 50 }, (_, i): [string, string] => ['pin', String(i)]));
      await waitFor(() => count === 50 && seenBeforeTick > 0, { message: 'all 50 messages emitted' });
      expect(seenBeforeTick).toBe(50);
    } finally {
      await closeClient(subscriber);
    }
  });

  it('hands over what arrived together as one batch, in order, with each message context, bounded by maxBatchSize', async () => {
    const messages = Array.from({ length: 25 }, (_, i): [string, string] => [i % 2 ? 'metrics.mem' : 'metrics.disk', envelope({ seq: i }, { traceId: `t-${i}` })]);
    await publishAtOnce(publisher, messages);
    await app.state.waitFor(() => app.state.payloadsOf('metrics').length === 25, '25 metrics');
    const batches = app.state.of('metrics');
    // One socket read, maxBatchSize 10: 10, 10, 5.
    expect(batches.map((b) => b.payloads.length)).toEqual([10, 10, 5]);
    expect(app.state.payloadsOf('metrics')).toEqual(messages.map((_, i) => ({ seq: i })));
    expect(batches.flatMap((b) => b.messages)).toEqual(
      messages.map(([channel], i) => ({ channel, pattern: 'metrics.*', metadata: { traceId: `t-${i}` } })),
    );
  });

  it('keeps order per channel across many batches', async () => {
    app.state.batches.length = 0;
    const sent: Array<[string, string]> = [];
    for (let round = 0; round < 8; round++) {
      const chunk = Array.from({ length: 30 }, (_, i): [string, string] => {
        const seq = round * 30 + i;
        return [`metrics.c${seq % 3}`, envelope({ seq })];
      });
      sent.push(...chunk);
      await publishAtOnce(publisher, chunk);
    }
    await app.state.waitFor(() => app.state.payloadsOf('metrics').length === sent.length, `${sent.length} metrics`);
    expect(app.state.of('metrics').every((b) => b.payloads.length >= 1 && b.payloads.length <= 10)).toBe(true);
    expect(app.state.payloadsOf('metrics')).toEqual(sent.map((_, seq) => ({ seq })));
    expect(app.state.maxActive.get('metrics')).toBe(1);
  });

  it('never runs two batches of a handler at once: messages queue behind a slow batch and go as the next one', async () => {
    app.state.batches.length = 0;
    app.state.close();
    await publisher.publish('metrics.a', envelope({ seq: 0 }));
    await app.state.waitFor(() => app.state.active.get('metrics') === 1, 'first batch running');
    const received = app.server.getStats().messages.received;
    for (let seq = 1; seq <= 6; seq++) await publisher.publish('metrics.a', envelope({ seq }));
    await waitFor(() => app.server.getStats().messages.received === received + 6, { message: 'six more received' });
    expect(app.state.of('metrics')).toHaveLength(1);
    app.state.open();
    await app.state.waitFor(() => app.state.payloadsOf('metrics').length === 7, 'seven metrics');
    expect(app.state.of('metrics').map((b) => b.payloads.length)).toEqual([1, 6]);
    expect(app.state.maxActive.get('metrics')).toBe(1);
  });

  it('skips and counts invalid messages inside a batch, and delivers the rest of it', async () => {
    app.state.batches.length = 0;
    const invalid = app.server.getStats().messages.invalid;
    await publishAtOnce(publisher, [
      ['metrics.a', envelope({ seq: 1 })],
      ['metrics.b', '{"data":{"__proto__":{"polluted":true}}}'],
      ['metrics.a', envelope({ seq: 2 })],
      ['metrics.c', Buffer.from([0xff, 0xfe, 0xfd])],
      ['metrics.a', envelope({ seq: 3 })],
    ]);
    await app.state.waitFor(() => app.state.payloadsOf('metrics').length === 3, 'three valid metrics');
    expect(app.state.of('metrics').map((b) => b.payloads)).toEqual([[{ seq: 1 }, { seq: 2 }, { seq: 3 }]]);
    expect(app.server.getStats().messages.invalid).toBe(invalid + 2);
    expect(app.logger.errors('Invalid message on channel "metrics.b": forbidden key "__proto__"')).toHaveLength(1);
    expect(app.logger.errors('Invalid message on channel "metrics.c": payload is not valid UTF-8')).toHaveLength(1);
  });

  it('applies duplicate detection per message, before batching: a repeat never reaches the batch', async () => {
    app.state.batches.length = 0;
    const duplicates = app.server.getStats().messages.duplicates;
    const stamped = (s: number) => envelope({ s }, { 'redisPubSub.position': { p: 'batch-test', s } });
    await publishAtOnce(publisher, [
      ['metrics.dup', stamped(1)],
      ['metrics.dup', stamped(2)],
      ['metrics.dup', stamped(2)],
      ['metrics.dup', stamped(3)],
    ]);
    await app.state.waitFor(() => app.state.payloadsOf('metrics').length === 3, 'three distinct metrics');
    expect(app.state.of('metrics').map((b) => b.payloads)).toEqual([[{ s: 1 }, { s: 2 }, { s: 3 }]]);
    expect(app.server.getStats().messages.duplicates).toBe(duplicates + 1);
  });

  it('logs and counts a throwing batch handler once per batch, with its size, and delivers the next batch', async () => {
    const errors = app.server.getStats().messages.handlerErrors;
    await publishAtOnce(publisher, [
      ['batch.fail', envelope({ n: 1 })],
      ['batch.fail', envelope({ n: 2, fail: true })],
      ['batch.fail', envelope({ n: 3 })],
    ]);
    await waitFor(() => app.server.getStats().messages.handlerErrors === errors + 1, { message: 'one handler error' });
    await publisher.publish('batch.fail', envelope({ n: 4 }));
    await app.state.waitFor(() => app.state.payloadsOf('fail').length === 4, 'batch after the failure');
    expect(app.state.of('fail').map((b) => b.payloads.length)).toEqual([3, 1]);
    // Nest's exception handler logs the cause with its stack; the transport adds the handler and the batch size.
    expect(app.logger.errors('batch handler exploded')).toHaveLength(1);
    expect(app.logger.errors('Batch handler for "batch.fail" failed on a batch of 3 message(s)')).toHaveLength(1);
    expect(app.server.getStats().messages.handlerErrors).toBe(errors + 1);
  });

  it('bounds what queues behind a slow handler by maxPending: the excess is dropped, counted and logged', async () => {
    // batch.slow: maxBatchSize 2, maxPending 4.
    const dropped = app.server.getStats().messages.dropped;
    app.state.close();
    await publisher.publish('batch.slow', envelope(0));
    await app.state.waitFor(() => app.state.active.get('slow') === 1, 'first batch running');
    await publishAtOnce(publisher, [1, 2, 3, 4, 5, 6].map((n): [string, string] => ['batch.slow', envelope(n)]));
    await waitFor(() => app.server.getStats().messages.dropped === dropped + 2, { message: 'two dropped' });
    expect(app.logger.errors('Batch handler for "batch.slow" is behind: maxPending (4) messages are queued; dropping new messages until it catches up, first on channel "batch.slow"')).toHaveLength(1);
    app.state.open();
    await app.state.waitFor(() => app.state.payloadsOf('slow').length === 5, 'the first message and the four queued');
    expect(app.state.of('slow').map((b) => b.payloads)).toEqual([[0], [1, 2], [3, 4]]);
    expect(app.logger.errors('Batch handler for "batch.slow" caught up: 2 message(s) were dropped while maxPending (4) was reached')).toHaveLength(1);
    expect(app.state.maxActive.get('slow')).toBe(1);
  });

  it('coexists with per-event handlers: a message on metrics.cpu reaches the channel handler one by one and the batch handler as a batch', async () => {
    app.state.batches.length = 0;
    app.state.single.length = 0;
    await publishAtOnce(publisher, [1, 2, 3].map((n): [string, string] => ['metrics.cpu', envelope({ n })]));
    await app.state.waitFor(() => app.state.single.length === 3 && app.state.payloadsOf('metrics').length === 3, 'both handlers');
    expect(app.state.single).toEqual([1, 2, 3].map((n) => ({ data: { n }, channel: 'metrics.cpu' })));
    expect(app.state.of('metrics').map((b) => b.payloads)).toEqual([[{ n: 1 }, { n: 2 }, { n: 3 }]]);
  });

  it('waits up to maxWaitMs for a batch that is not full, and no longer once it is full', async () => {
    // batch.wait: maxBatchSize 3, maxWaitMs 60 s. Three separate publishes (three socket reads) make one batch.
    for (const n of [1, 2, 3]) await publisher.publish('batch.wait', envelope(n));
    await app.state.waitFor(() => app.state.payloadsOf('wait').length === 3, 'a full batch');
    expect(app.state.of('wait').map((b) => b.payloads)).toEqual([[1, 2, 3]]);
  });

  it('runs the processing hooks once per batch, with the batch context', async () => {
    const started: unknown[] = [];
    const ended: unknown[] = [];
    app.server.setOnProcessingStartHook((_transport, context, done) => {
      started.push(context);
      return done();
    });
    app.server.setOnProcessingEndHook((_transport, context) => ended.push(context));
    try {
      app.state.batches.length = 0;
      await publishAtOnce(publisher, [1, 2, 3, 4].map((n): [string, string] => ['metrics.hooks', envelope(n)]));
      await waitFor(() => ended.length === 1, { message: 'end hook ran' });
      expect(started).toHaveLength(1);
      expect(started[0]).toBeInstanceOf(RedisPubSubBatchContext);
      expect(ended[0]).toBe(started[0]);
      expect((started[0] as RedisPubSubBatchContext).getMessages().map((m: RedisPubSubContext) => m.getChannel())).toEqual(Array(4).fill('metrics.hooks'));
      expect(app.state.of('metrics').map((b) => b.payloads)).toEqual([[1, 2, 3, 4]]);
    } finally {
      app.server.setOnProcessingStartHook((_transport, _context, done) => done());
      app.server.setOnProcessingEndHook(() => undefined);
    }
  });
});

describe('batch handlers and close()', () => {
  it('waits for the running batch and hands over what is queued, without waiting for maxWaitMs', async () => {
    const redis = await startRedis();
    const publisher = await connectClient(redis.url);
    const app = await startBatchApp({ url: redis.url });
    try {
      app.state.close();
      await publisher.publish('metrics.a', envelope(1));
      await app.state.waitFor(() => app.state.active.get('metrics') === 1, 'a batch running');
      await publisher.publish('metrics.a', envelope(2));
      // batch.wait holds a batch that is not full for 60 s.
      await publisher.publish('batch.wait', envelope('queued'));
      await waitFor(() => app.server.getStats().messages.received === 3, { message: 'three received' });
      let closed = false;
      const closing = app.close().then(() => (closed = true));
      await app.state.waitFor(() => app.state.payloadsOf('wait').length === 1, 'the held batch handed over at close');
      expect(closed).toBe(false);
      app.state.open();
      await closing;
      expect(app.state.of('metrics').map((b) => b.payloads)).toEqual([[1], [2]]);
      expect(app.logger.lines.filter((l) => l.level === 'warn')).toEqual([]);
    } finally {
      app.state.open();
      await app.close();
      await closeClient(publisher);
      await redis.stop();
    }
  });
});

describe('batch options', () => {
  const handler = (extras: Record<string, unknown>, isEventHandler = true, next?: MessageHandler): MessageHandler =>
    Object.assign(async () => undefined, { extras, isEventHandler, next }) as unknown as MessageHandler;

  it('are off for per-event handlers and default to maxBatchSize 1000, maxWaitMs 0, maxPending 10000', () => {
    expect(batchSettings('a', handler({}))).toBeUndefined();
    expect(batchSettings('a', handler({ batch: true }))).toEqual({ maxBatchSize: 1000, maxWaitMs: 0, maxPending: 10_000 });
    expect(batchSettings('a', handler({ batch: true, maxBatchSize: 50, maxWaitMs: 5, maxPending: 50 }))).toEqual({ maxBatchSize: 50, maxWaitMs: 5, maxPending: 50 });
  });

  it('reject invalid values, options without batch: true, request handlers and chained handlers that disagree', () => {
    expect(() => batchSettings('a', handler({ batch: true, maxBatchSize: 0 }))).toThrow('handler of "a": maxBatchSize must be a positive integer, got 0');
    expect(() => batchSettings('a', handler({ batch: true, maxWaitMs: -1 }))).toThrow('maxWaitMs must be a number from 0 to 2147483647, got -1');
    expect(() => batchSettings('a', handler({ batch: true, maxBatchSize: 10, maxPending: 5 }))).toThrow('maxPending must be an integer >= maxBatchSize (10), got 5');
    expect(() => batchSettings('a', handler({ maxBatchSize: 10 }))).toThrow('maxBatchSize, maxWaitMs and maxPending need batch: true');
    expect(() => batchSettings('a', handler({ batch: true }, false))).toThrow('batch: true is for @EventPattern handlers');
    expect(() => batchSettings('a', handler({ batch: true }, true, handler({})))).toThrow('the handlers of "a" disagree on batch');
  });
});

describe('batch contexts (unit)', () => {
  /** A dispatcher over a handler that records what it was given; batches run as soon as they are flushed. */
  function dispatcher(key: string, pattern: string | undefined, maxBatchSize: number) {
    const seen: Array<{ payloads: unknown[]; ctx: RedisPubSubBatchContext }> = [];
    const handler = Object.assign((payloads: unknown[], ctx: RedisPubSubBatchContext) => void seen.push({ payloads, ctx }), { isEventHandler: true }) as unknown as MessageHandler;
    const host: BatchHost = { inFlight: () => undefined, process: (_ctx, body) => body(() => undefined), counters: { handlerErrors: 0, dropped: 0 }, logger: new CaptureLogger() };
    return { seen, batch: new BatchDispatcher(key, pattern, handler, { maxBatchSize, maxWaitMs: 0, maxPending: 100 }, host) };
  }
  const describeMessages = (ctx: RedisPubSubBatchContext) => ctx.getMessages().map((m) => [m.getChannel(), m.getPattern(), m.getMetadata()]);

  it('builds each message context on first use, with the metadata of the messages that had some, across a split batch', async () => {
    const { seen, batch } = dispatcher('metrics.*', 'metrics.*', 3);
    batch.add(0, 'metrics.a', undefined);
    batch.add(1, 'metrics.b', { m: 1 });
    batch.add(2, 'metrics.c', undefined);
    batch.add(3, 'metrics.d', undefined);
    batch.add(4, 'metrics.e', { m: 4 });
    await new Promise((resolve) => process.nextTick(resolve));
    expect(seen.map((b) => b.payloads)).toEqual([[0, 1, 2], [3, 4]]);
    expect(seen.map((b) => b.ctx.size)).toEqual([3, 2]);
    expect(describeMessages(seen[0]!.ctx)).toEqual([
      ['metrics.a', 'metrics.*', undefined],
      ['metrics.b', 'metrics.*', { m: 1 }],
      ['metrics.c', 'metrics.*', undefined],
    ]);
    expect(seen[1]!.ctx.getArgs()).toEqual([[expect.any(RedisPubSubContext), expect.any(RedisPubSubContext)]]);
    expect(seen[1]!.ctx.getArgByIndex(0)).toBe(seen[1]!.ctx.getMessages());
    expect(describeMessages(seen[1]!.ctx)).toEqual([
      ['metrics.d', 'metrics.*', undefined],
      ['metrics.e', 'metrics.*', { m: 4 }],
    ]);
  });

  it('gives the messages of a channel handler its channel and no pattern', async () => {
    const { seen, batch } = dispatcher('orders', undefined, 10);
    batch.add('a', 'orders', undefined);
    batch.add('b', 'orders', { m: 2 });
    await new Promise((resolve) => process.nextTick(resolve));
    expect(describeMessages(seen[0]!.ctx)).toEqual([
      ['orders', undefined, undefined],
      ['orders', undefined, { m: 2 }],
    ]);
  });
});

describe('batch handlers with OpenTelemetry', () => {
  it('ends the process span of each message when its batch settles, as an error when the batch failed', async () => {
    const telemetry = new InMemoryTelemetry().register();
    const redis = await startRedis();
    const publisher = await connectClient(redis.url);
    const app = await startBatchApp({ url: redis.url });
    try {
      await publishAtOnce(publisher, [1, 2, 3].map((n): [string, string] => ['metrics.otel', envelope(n)]));
      await waitFor(() => telemetry.named('process metrics.*').length === 3, { message: 'three process spans' });
      expect(app.state.of('metrics').map((b) => b.payloads)).toEqual([[1, 2, 3]]);
      expect(telemetry.named('process metrics.*').every((span) => span.status.code === SpanStatusCode.UNSET)).toBe(true);

      await publishAtOnce(publisher, [
        ['batch.fail', envelope({ n: 1 })],
        ['batch.fail', envelope({ n: 2, fail: true })],
      ]);
      await waitFor(() => telemetry.named('process batch.fail').length === 2, { message: 'two failed process spans' });
      expect(telemetry.named('process batch.fail').map((span) => span.status.code)).toEqual([SpanStatusCode.ERROR, SpanStatusCode.ERROR]);
    } finally {
      await app.close();
      await closeClient(publisher);
      await redis.stop();
      await telemetry.shutdown();
    }
  });
});
