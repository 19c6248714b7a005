import type { Redis } from 'ioredis';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../lib/index.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { Gate, startTestApp } from './support/test-app.js';
import { connectionNames } from './support/transport-utils.js';

describe('connections and graceful close', () => {
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

  it('opens exactly two connections per server and per client, however many handlers', async () => {
    const app = await startTestApp({ url: redis.url, name: 'count-server' });
    const client = new RedisPubSubClient({ url: redis.url, name: 'count-client' });
    try {
      await client.connect();
      await firstValueFrom(client.send('math.sum', [1]));
      await firstValueFrom(client.emit('inbound', 1));
      expect(await connectionNames(redis, 'count-server')).toEqual(['count-server:pub', 'count-server:sub']);
      expect(await connectionNames(redis, 'count-client')).toEqual(['count-client:pub', 'count-client:sub']);
    } finally {
      await client.close();
      await app.close();
    }
    expect(await connectionNames(redis, 'count-')).toEqual([]);
  });

  it('takes the fields given in `redis` over the same fields of `url`', async () => {
    const app = await startTestApp({ url: 'redis://127.0.0.1:1/0', redis: { port: redis.port }, name: 'precedence' });
    try {
      expect(app.server.getStats().state).toBe('connected');
      expect(await connectionNames(redis, 'precedence')).toEqual(['precedence:pub', 'precedence:sub']);
    } finally {
      await app.close();
    }
  });

  it('listen() resolves only once every subscription is acknowledged by Redis', async () => {
    const app = await startTestApp({ url: redis.url, name: 'ack-server' });
    try {
      const stats = app.server.getStats();
      expect(stats.state).toBe('connected');
      expect(stats.subscriptions.confirmed).toBe(stats.subscriptions.expected);
      const [, numsub] = (await redis.command('PUBSUB', 'NUMSUB', 'orders.created')) as [string, number];
      expect(numsub).toBe(1);
      expect(await redis.command('PUBSUB', 'NUMPAT')).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('close() stops taking messages, waits for the in-flight handler, then closes both connections', async () => {
    const app = await startTestApp({ url: redis.url, name: 'drain-server' });
    const gate = (app.state.gate = new Gate());
    await publisher.publish('orders.slow', JSON.stringify({ data: 'in-flight' }));
    await waitFor(() => gate.entered, { message: 'slow handler entered' });

    let closed = false;
    const closing = app.close().then(() => (closed = true));
    // The subscriber goes first: nothing new arrives while the handler drains.
    await waitFor(async () => (await connectionNames(redis, 'drain-server')).join() === 'drain-server:pub', {
      message: 'subscriber closed, publisher kept',
    });
    await publisher.publish('inbound', JSON.stringify({ data: 'too late' }));
    expect(closed).toBe(false);

    gate.release();
    await closing;
    expect(app.inbox.of('slow').map((i) => i.data)).toEqual(['in-flight']);
    expect(app.inbox.of('inbound')).toEqual([]);
    expect(await connectionNames(redis, 'drain-server')).toEqual([]);
    expect(app.server.getStats().state).toBe('closed');
  });

  it('close() gives up waiting after closeTimeoutMs and says so', async () => {
    const app = await startTestApp({ url: redis.url, name: 'stuck-server', closeTimeoutMs: 300 });
    const gate = (app.state.gate = new Gate());
    await publisher.publish('orders.slow', JSON.stringify({ data: 'stuck' }));
    await waitFor(() => gate.entered, { message: 'slow handler entered' });
    await app.close();
    expect(app.logger.lines.some((l) => l.level === 'warn' && l.message.includes('1 handler(s) still running after 300 ms'))).toBe(true);
    expect(await connectionNames(redis, 'stuck-server')).toEqual([]);
    gate.release();
  });
});
