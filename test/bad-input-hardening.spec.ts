import type { Deserializer } from '@nestjs/microservices';
import type { Redis } from 'ioredis';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer } from '../lib/index.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { delay, waitFor } from './harness/wait.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';
import { listen } from './support/transport-utils.js';

describe('bad input', () => {
  let redis: RedisServerHandle;
  let publisher: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    publisher = await connectClient(redis.url);
  });

  afterAll(async () => {
    await closeClient(publisher);
    await redis?.stop();
  });

  describe('forbidden keys written with JSON unicode escapes', () => {
    let app: StartedTestApp;
    beforeAll(async () => {
      app = await startTestApp({ url: redis.url });
    });
    afterAll(async () => {
      await app?.close();
    });

    it.each([
      ['__proto__', String.raw`{"data":{"\u005f_proto__":{"polluted":true}}}`],
      ['constructor', String.raw`{"data":{"\u0063onstructor":{"\u0070rototype":{"polluted":true}}}}`],
    ])('rejects a %s key spelled with \\u escapes (JSON.parse decodes it, the substring pre-check misses it)', async (key, payload) => {
      app.inbox.items.length = 0;
      const invalidBefore = app.server.getStats().messages.invalid;
      await publisher.publish('inbound', payload);
      await publisher.publish('inbound', JSON.stringify({ data: 'next' }));
      await app.inbox.waitFor((items) => items.some((i) => i.data === 'next'));
      const reached = app.inbox.of('inbound').filter((i) => i.data !== 'next');
      // The handler got an object whose own key is the forbidden one.
      expect(reached.map((i) => Object.keys(i.data as object))).toEqual([]);
      expect(app.server.getStats().messages.invalid).toBe(invalidBefore + 1);
      expect(app.logger.errors(`forbidden key "${key}"`)).toHaveLength(1);
    });
  });

  it('a custom deserializer that throws synchronously is a rejected message, not an uncaught exception', async () => {
    // ioredis rethrows listener exceptions on process.nextTick: in a plain Node process this kills it.
    const syncThrowing: Deserializer = {
      deserialize: (value: unknown) => {
        if (value === 'boom') throw new Error('sync deserializer failure');
        return { pattern: 'inbound', data: value };
      },
    };
    const received: unknown[] = [];
    const server = new RedisPubSubServer({ url: redis.url, deserializer: syncThrowing, name: 'sync-deser' });
    server.addHandler('inbound', async (data: unknown) => void received.push(data), true);
    try {
      await listen(server);
      await publisher.publish('inbound', 'boom');
      await publisher.publish('inbound', 'next');
      await waitFor(() => received.includes('next'), { message: 'next message handled' });
      expect(server.getStats().messages.invalid).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('client: a reply deserializer that throws synchronously fails that send(), not the process', async () => {
    const server = new RedisPubSubServer({ url: redis.url, name: 'sync-deser-replier' });
    server.addHandler('math.sum', async (numbers: number[]) => numbers.reduce((a, b) => a + b, 0));
    await listen(server);
    const client = new RedisPubSubClient({
      url: redis.url,
      name: 'sync-deser-client',
      deserializer: {
        deserialize: () => {
          throw new Error('sync reply deserializer failure');
        },
      },
    });
    try {
      await client.connect();
      await expect(firstValueFrom(client.send('math.sum', [1, 2]))).rejects.toThrow(/reply rejected: deserializer failed: sync reply deserializer failure/);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it("a catch-all pattern handler must not receive the transport's own probe and reply traffic", async () => {
    const channels: string[] = [];
    const server = new RedisPubSubServer({ url: redis.url, heartbeat: { intervalMs: 100, timeoutMs: 300 }, name: 'catch-all' });
    server.addHandler('*', async (_data: unknown, ctx: { getChannel(): string }) => void channels.push(ctx.getChannel()), true, {
      psubscribe: true,
    });
    try {
      await listen(server);
      await publisher.publish('user.channel', JSON.stringify({ data: 1 }));
      await waitFor(() => channels.includes('user.channel'), { message: 'user event handled' });
      await delay(500); // a few probe rounds
      expect(channels.filter((c) => c.startsWith('__nestjs-redis-pubsub:'))).toEqual([]);
    } finally {
      await server.close();
    }
  });
});
