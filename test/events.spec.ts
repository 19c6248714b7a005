import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';
import type { Redis } from 'ioredis';

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

  it('delivers a Nest envelope to every handler of the channel, with the channel in the context', async () => {
    await publisher.publish('orders.created', JSON.stringify({ pattern: 'orders.created', data: { id: 1 } }));
    await app.inbox.waitFor((items) => items.filter((i) => i.handler.startsWith('created')).length === 2);
    expect(app.inbox.of('created')).toEqual([{ handler: 'created', data: { id: 1 }, channel: 'orders.created', pattern: undefined, metadata: undefined }]);
    expect(app.inbox.of('created-audit')[0].data).toEqual({ id: 1 });
  });
});
