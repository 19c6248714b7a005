import type { Redis } from 'ioredis';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import type { RedisPubSubContext } from '../lib/index.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

describe('events through a real Nest microservice', () => {
  let redis: RedisServerHandle;
  let app: StartedTestApp;
  let publisher: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    app = await startTestApp({ url: redis.url });
    publisher = await connectClient(redis.url);
  });

  afterAll(async () => {
    await closeClient(publisher);
    await app?.close();
    await redis?.stop();
  });

  beforeEach(() => {
    app.inbox.items.length = 0;
  });

  it('delivers a Nest envelope to every handler of the channel, with the channel and metadata in the context', async () => {
    await publisher.publish('orders.created', JSON.stringify({ pattern: 'orders.created', data: { id: 1 }, metadata: { traceId: 't-1' } }));
    await app.inbox.waitFor((items) => items.filter((i) => i.handler.startsWith('created')).length === 2);
    expect(app.inbox.of('created')).toEqual([
      { handler: 'created', data: { id: 1 }, channel: 'orders.created', pattern: undefined, metadata: { traceId: 't-1' } },
    ]);
    expect(app.inbox.of('created-audit')[0].data).toEqual({ id: 1 });
  });

  it('delivers pattern subscriptions with the subscribed glob and the concrete channel', async () => {
    await publisher.publish('orders.shipped', JSON.stringify({ pattern: 'orders.shipped', data: 'box-7' }));
    await app.inbox.waitFor((items) => items.some((i) => i.handler === 'any-order'));
    expect(app.inbox.of('any-order')).toEqual([
      { handler: 'any-order', data: 'box-7', channel: 'orders.shipped', pattern: 'orders.*', metadata: undefined },
    ]);
  });

  it('delivers a raw text payload as a string with the channel as pattern, like redis-cli PUBLISH', async () => {
    await publisher.publish('orders.created', 'hello');
    await app.inbox.waitFor((items) => items.some((i) => i.handler === 'created'));
    expect(app.inbox.of('created')[0]).toMatchObject({ data: 'hello', channel: 'orders.created' });
  });

  it('delivers a JSON value that is not an envelope (a Python service) as data', async () => {
    await publisher.publish('orders.created', JSON.stringify({ order_id: 9, items: [1, 2] }));
    await publisher.publish('orders.created', '42');
    await app.inbox.waitFor((items) => items.filter((i) => i.handler === 'created').length === 2);
    expect(app.inbox.of('created').map((i) => i.data)).toEqual([{ order_id: 9, items: [1, 2] }, 42]);
  });

  it('keeps handling after a handler throws or rejects, and logs and counts each failure with the channel', async () => {
    const before = app.server.getStats().messages.handlerErrors;
    await publisher.publish('orders.fail', JSON.stringify({ data: { sync: true } }));
    await publisher.publish('orders.fail', JSON.stringify({ data: { sync: false } }));
    await publisher.publish('orders.created', JSON.stringify({ data: 'after' }));
    await app.inbox.waitFor((items) => items.some((i) => i.handler === 'created' && i.data === 'after'));
    await app.inbox.waitFor(() => app.server.getStats().messages.handlerErrors === before + 2, 'two handler errors counted');
    // Nest's exception handler logs the cause with its stack; the transport adds the channel.
    expect(app.logger.errors('handler exploded synchronously')).toHaveLength(1);
    expect(app.logger.errors('handler rejected')).toHaveLength(1);
    expect(app.logger.errors('Handler for channel "orders.fail" failed')).toHaveLength(2);
  });

  it("runs Nest's processing start and end hooks around every event, so tracing sees each message", async () => {
    const started: string[] = [];
    const ended: string[] = [];
    app.server.setOnProcessingStartHook((_transport, context, done) => {
      started.push((context as RedisPubSubContext).getChannel());
      return done();
    });
    app.server.setOnProcessingEndHook((_transport, context) => ended.push((context as RedisPubSubContext).getChannel()));
    try {
      await publisher.publish('inbound', JSON.stringify({ data: 1 }));
      await publisher.publish('orders.fail', JSON.stringify({ data: {} }));
      // orders.fail also matches the orders.* pattern handler: three deliveries.
      await app.inbox.waitFor(() => ended.length >= 3, 'three end hooks');
      expect(started).toEqual(['inbound', 'orders.fail', 'orders.fail']);
      expect(ended.sort()).toEqual(['inbound', 'orders.fail', 'orders.fail']);
    } finally {
      app.server.setOnProcessingStartHook((_transport, _context, done) => done());
      app.server.setOnProcessingEndHook(() => undefined);
    }
  });
});
