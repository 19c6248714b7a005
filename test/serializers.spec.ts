import type { Deserializer, Serializer } from '@nestjs/microservices';
import type { Redis } from 'ioredis';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../lib/index.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

/** A producer that wraps payloads as { v: 1, body } and a consumer that unwraps them, both async. */
const asyncSerializer: Serializer = {
  serialize: async (packet: { pattern: string; data: unknown }) => ({ v: 1, channel: packet.pattern, body: packet.data }),
};
const asyncDeserializer: Deserializer = {
  deserialize: async (value: { v?: number; channel?: string; body?: unknown }, options?: { channel: string }) => {
    if (value?.v !== 1) throw new Error('unknown schema version');
    return { pattern: options?.channel, data: value.body };
  },
};

describe('custom serializer and deserializer', () => {
  let redis: RedisServerHandle;
  let app: StartedTestApp;
  let publisher: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    app = await startTestApp({ url: redis.url, deserializer: asyncDeserializer });
    publisher = await connectClient(redis.url);
  });

  afterAll(async () => {
    await closeClient(publisher);
    await app?.close();
    await redis?.stop();
  });

  it('honours an async client serializer and an async server deserializer end to end', async () => {
    const client = new RedisPubSubClient({ url: redis.url, serializer: asyncSerializer });
    try {
      await firstValueFrom(client.emit('inbound', { n: 7 }));
      await app.inbox.waitFor((items) => items.some((i) => i.handler === 'inbound'));
      expect(app.inbox.of('inbound')[0]).toMatchObject({ data: { n: 7 }, channel: 'inbound' });
    } finally {
      await client.close();
    }
  });

  it('logs and counts a deserializer failure with the channel, and keeps going', async () => {
    app.inbox.items.length = 0;
    const before = app.server.getStats().messages.invalid;
    await publisher.publish('inbound', JSON.stringify({ v: 2 }));
    await publisher.publish('inbound', JSON.stringify({ v: 1, body: 'ok' }));
    await app.inbox.waitFor((items) => items.some((i) => i.data === 'ok'));
    expect(app.server.getStats().messages.invalid).toBe(before + 1);
    expect(app.logger.errors('Invalid message on channel "inbound": deserializer failed: unknown schema version')).toHaveLength(1);
  });
});
