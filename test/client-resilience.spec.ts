import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer, RedisPubSubStatus } from '../lib/index.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { freePort } from './harness/ports.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT } from './support/fault-rig.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

describe('client and status while Redis is away', () => {
  let redis: RedisServerHandle;
  let app: StartedTestApp;
  let proxy: FaultProxy;

  beforeEach(async () => {
    redis = await startRedis();
    app = await startTestApp({ url: redis.url, closeTimeoutMs: 200 });
    proxy = await FaultProxy.start({ host: redis.host, port: redis.port });
  });

  afterEach(async () => {
    await app?.close();
    await proxy?.close();
    await redis?.stop();
  });

  it('holds emit() while the publisher is down and flushes the queue in order once it is back', async () => {
    const client = new RedisPubSubClient({ url: proxy.url, heartbeat: FAST_HEARTBEAT });
    try {
      await client.connect();
      proxy.refuse(true);
      proxy.reset();
      await waitFor(() => client.getStats().state === RedisPubSubStatus.RECONNECTING, { message: 'client reconnecting' });
      const sent = [1, 2, 3].map((n) => firstValueFrom(client.emit('inbound', { n }), { defaultValue: undefined }));
      await waitFor(() => client.getStats().pending?.events === 3, { message: 'three events queued' });
      proxy.refuse(false);
      await Promise.all(sent);
      await app.inbox.waitFor((items) => items.length === 3);
      expect(app.inbox.of('inbound').map((i) => i.data)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    } finally {
      await client.close();
    }
  });

  it('fails emit() at once when the offline queue is full, and after offlineQueue.timeoutMs otherwise', async () => {
    const client = new RedisPubSubClient({ url: proxy.url, offlineQueue: { maxSize: 2, timeoutMs: 300 } });
    try {
      await client.connect();
      proxy.refuse(true);
      proxy.reset();
      await waitFor(() => client.getStats().state === RedisPubSubStatus.RECONNECTING, { message: 'client reconnecting' });
      const queued = [firstValueFrom(client.emit('inbound', 1)), firstValueFrom(client.emit('inbound', 2))];
      await expect(firstValueFrom(client.emit('inbound', 3))).rejects.toThrow(/offline queue is full \(2 events\)/);
      for (const event of queued) await expect(event).rejects.toThrow(/Redis was unreachable for 300 ms/);
      expect(client.getStats().pending?.events).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('fails a pending send() with a clear error as soon as its reply path dies', async () => {
    const client = new RedisPubSubClient({ url: proxy.url, requestTimeoutMs: 30_000, heartbeat: FAST_HEARTBEAT });
    try {
      await client.connect();
      const started = Date.now();
      const received = app.server.getStats().messages.received;
      const request = firstValueFrom(client.send('math.never', {}));
      await waitFor(() => app.server.getStats().messages.received === received + 1, { message: 'request reached the server' });
      proxy.reset();
      await expect(request).rejects.toThrow(/request to "math.never" failed: the reply connection to Redis was lost/);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await client.close();
    }
  });

  it('reports connecting, connected, reconnecting, connected, closed through status', async () => {
    const states: string[] = [];
    const client = new RedisPubSubClient({ url: proxy.url, heartbeat: FAST_HEARTBEAT });
    client.status.subscribe((state) => states.push(state));
    await client.connect();
    proxy.reset();
    await waitFor(() => states.filter((s) => s === 'connected').length === 2, { message: `reconnected; states: ${states}` });
    await client.close();
    expect(states).toEqual(['connecting', 'connected', 'reconnecting', 'connected', 'closed']);
    expect(Object.values(RedisPubSubStatus)).toEqual(['connecting', 'connected', 'reconnecting', 'disconnected', 'closed']);
  });
});

describe('retry policy', () => {
  it("honours the user's retryStrategy and reports disconnected when it stops", async () => {
    const port = await freePort();
    const calls: number[] = [];
    const server = new RedisPubSubServer({
      redis: { host: '127.0.0.1', port, retryStrategy: (times) => (calls.push(times), times < 3 ? 10 : null) },
    });
    const states: string[] = [];
    server.status.subscribe((state) => states.push(state));
    await expect(new Promise((resolve, reject) => server.listen((err?: unknown) => (err ? reject(err) : resolve(undefined))))).rejects.toThrow(
      /could not connect the (subscriber|publisher) connection to Redis/,
    );
    await waitFor(() => Object.values(server.getStats().connections).every((c) => c.state === 'disconnected'), {
      message: 'both connections gave up',
    });
    // One strategy, called by each of the two connections.
    expect([...calls].sort()).toEqual([1, 1, 2, 2, 3, 3]);
    expect(server.getStats().state).toBe('disconnected');
    expect(states).toContain('disconnected');
    await server.close();
    expect(server.getStats().state).toBe('closed');
  });

  it('stops after retry.maxAttempts, and otherwise keeps trying until Redis appears', async () => {
    const port = await freePort();
    const limited = new RedisPubSubServer({ redis: { host: '127.0.0.1', port }, retry: { minDelayMs: 5, maxDelayMs: 10, maxAttempts: 4 } });
    await expect(new Promise((resolve, reject) => limited.listen((err?: unknown) => (err ? reject(err) : resolve(undefined))))).rejects.toThrow(
      /could not connect/,
    );
    await waitFor(() => Object.values(limited.getStats().connections).every((c) => c.state === 'disconnected'), {
      message: 'both connections gave up',
    });
    expect(limited.getStats().connections.subscriber.attempt).toBe(5);
    expect(limited.getStats().connections.publisher.attempt).toBe(5);
    await limited.close();

    const patient = new RedisPubSubServer({ redis: { host: '127.0.0.1', port }, retry: { minDelayMs: 5, maxDelayMs: 50 } });
    const listening = new Promise((resolve, reject) => patient.listen((err?: unknown) => (err ? reject(err) : resolve('listening'))));
    await waitFor(() => patient.getStats().connections.subscriber.attempt >= 10, { message: '10 attempts while Redis is missing' });
    const late = await startRedis({ port });
    try {
      await expect(listening).resolves.toBe('listening');
      expect(patient.getStats().state).toBe('connected');
    } finally {
      await patient.close();
      await late.stop();
    }
  });
});
