import { firstValueFrom } from 'rxjs';
import type { Redis } from 'ioredis';
import { RedisPubSubClient } from '../lib/index.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

/** How many PUBLISH commands Redis has executed (INFO commandstats). */
async function publishCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  return Number(/cmdstat_publish:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

describe('publish confirmation against a real redis-server', () => {
  let redis: RedisServerHandle;
  let admin: Redis;
  const clients: RedisPubSubClient[] = [];
  const apps: StartedTestApp[] = [];

  beforeEach(async () => {
    redis = await startRedis();
    admin = await connectClient(redis.url);
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
    for (const app of apps.splice(0)) await app.close();
    await closeClient(admin);
    await redis.stop();
  });

  const client = async (options: ConstructorParameters<typeof RedisPubSubClient>[0] = {}) => {
    const created = new RedisPubSubClient({ url: redis.url, heartbeat: false, ...options });
    clients.push(created);
    await created.connect();
    return created;
  };

  it('emit() resolves to the number of subscribers Redis delivered the event to', async () => {
    const events = await client();
    await expect(firstValueFrom(events.emit('inbound', { n: 1 }))).resolves.toBe(0);
    apps.push(await startTestApp({ url: redis.url, heartbeat: false }), await startTestApp({ url: redis.url, heartbeat: false }));
    await expect(firstValueFrom(events.emit('inbound', { n: 2 }))).resolves.toBe(2);
  });

  it('requireReceiver: fails after the bounded retries when nobody received the event', async () => {
    const events = await client({ requireReceiver: { retries: 2, retryDelayMs: 10 } });
    const before = await publishCalls(admin);
    await expect(firstValueFrom(events.emit('nobody.listens', { n: 1 }))).rejects.toThrow(
      'redis-pubsub-client: event "nobody.listens" reached no subscriber: Redis counted 0 receivers in 3 attempt(s)',
    );
    expect((await publishCalls(admin)) - before).toBe(3);
  });

  it('requireReceiver: succeeds once a subscriber appears during the retries, and it handles the event once', async () => {
    const events = await client({ requireReceiver: { retries: 200, retryDelayMs: 20 } });
    const before = await publishCalls(admin);
    const emitted = firstValueFrom(events.emit('inbound', { n: 1 }));
    await waitFor(async () => (await publishCalls(admin)) - before >= 2, { message: 'two attempts without receiver' });
    const app = await startTestApp({ url: redis.url, heartbeat: false });
    apps.push(app);
    await expect(emitted).resolves.toBe(1);
    await app.inbox.waitFor((items) => items.length === 1);
    expect(app.server.getStats().messages).toMatchObject({ duplicates: 0, lost: 0 });
  });

  it('requireReceiver: rejects bad values with the option named', () => {
    expect(() => new RedisPubSubClient({ requireReceiver: { retries: -1 } })).toThrow('option "requireReceiver.retries" must be a whole number from 0, got -1');
    expect(() => new RedisPubSubClient({ requireReceiver: { retryDelayMs: 0 } })).toThrow('option "requireReceiver.retryDelayMs" must be a whole number of milliseconds from 1');
  });
});
