import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../lib/index.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

describe('request-response with RedisPubSubClient', () => {
  let redis: RedisServerHandle;
  let app: StartedTestApp;
  let client: RedisPubSubClient;
  let other: RedisPubSubClient;

  beforeAll(async () => {
    redis = await startRedis();
    // math.never stays in flight for good: do not let close() wait the default 10 s for it.
    app = await startTestApp({ url: redis.url, closeTimeoutMs: 200 });
    client = new RedisPubSubClient({ url: redis.url, requestTimeoutMs: 1_000, name: 'rr-client' });
    other = new RedisPubSubClient({ url: redis.url, name: 'rr-other' });
    await Promise.all([client.connect(), other.connect()]);
  });

  afterAll(async () => {
    await client?.close();
    await other?.close();
    await app?.close();
    await redis?.stop();
  });

  it('answers a request with the handler result', async () => {
    await expect(firstValueFrom(client.send('math.sum', [1, 2, 3]))).resolves.toBe(6);
  });

  it('serves concurrent requests, each reply routed to its own caller', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => firstValueFrom(client.send('math.sum', [i, 1]))));
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('delivers replies only to the requesting instance (a reply channel per client, not per pattern)', async () => {
    const otherBefore = other.getStats().messages.received;
    await firstValueFrom(client.send('math.sum', [2, 2]));
    const channels = (await redis.command('PUBSUB', 'CHANNELS', '__nestjs-redis-pubsub:reply:*')) as string[];
    expect(channels).toHaveLength(2);
    expect(channels.some((c) => c.includes('math.sum'))).toBe(false);
    expect(other.getStats().messages.received).toBe(otherBefore);
  });

  it('propagates a handler error to the caller', async () => {
    await expect(firstValueFrom(client.send('math.fail', {}))).rejects.toEqual({ status: 'error', message: 'cannot compute' });
  });

  it('fails a request nobody answers with a timeout error', async () => {
    const started = Date.now();
    await expect(firstValueFrom(client.send('math.never', {}))).rejects.toThrow(/request to "math.never" timed out after 1000 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
  });

  it('fails fast, before the timeout, when nobody is subscribed to the pattern', async () => {
    const slow = new RedisPubSubClient({ url: redis.url, requestTimeoutMs: 60_000 });
    try {
      await expect(firstValueFrom(slow.send('nobody.home', 1))).rejects.toThrow(/no subscriber for pattern "nobody.home"/);
      expect(slow.getStats().pending?.requests).toBe(0);
    } finally {
      await slow.close();
    }
  });

  it('carries metadata set by the dispatch hook to the handler context', async () => {
    app.inbox.items.length = 0;
    client.setOnDispatchHook((packet) => (packet.metadata = { traceId: 'abc' }));
    try {
      await firstValueFrom(client.emit('inbound', { n: 1 }));
    } finally {
      client.setOnDispatchHook(() => undefined);
    }
    await app.inbox.waitFor((items) => items.some((i) => i.handler === 'inbound'));
    expect(app.inbox.of('inbound')[0]).toMatchObject({ data: { n: 1 }, metadata: { traceId: 'abc' } });
  });

  it('fails send() and emit() after close() with a clear error', async () => {
    const closed = new RedisPubSubClient({ url: redis.url });
    await closed.connect();
    await closed.close();
    await expect(firstValueFrom(closed.send('math.sum', [1]))).rejects.toThrow(/send\(\) after close\(\)/);
    await expect(firstValueFrom(closed.emit('inbound', 1))).rejects.toThrow(/emit\(\) after close\(\)/);
  });
});
