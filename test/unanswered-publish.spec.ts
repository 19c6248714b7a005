import { firstValueFrom } from 'rxjs';
import { Redis } from 'ioredis';
import { RedisPubSubClient } from '../lib/index.js';
import { closeClient } from './harness/clients.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT, startFaultRig, type FaultRig } from './support/fault-rig.js';

/** A promise's outcome, readable synchronously. */
function track<T>(promise: Promise<T>): { settled: () => boolean; outcome: Promise<{ ok: boolean; value?: T; error?: Error }> } {
  let settled = false;
  const outcome = promise.then(
    (value) => ((settled = true), { ok: true, value }),
    (error: Error) => ((settled = true), { ok: false, error }),
  );
  return { settled: () => settled, outcome };
}

describe('ioredis behaviour this transport relies on', () => {
  let redis: RedisServerHandle;
  let proxy: FaultProxy;

  beforeAll(async () => {
    redis = await startRedis();
    proxy = await FaultProxy.start({ host: redis.host, port: redis.port });
  });

  afterAll(async () => {
    await proxy?.close();
    await redis?.stop();
  });

  // managed-connection.ts turns autoResendUnfulfilledCommands off and fails the unanswered commands
  // itself (in retryStrategy, which ioredis calls right after moving them to prevCommandQueue).
  it('with autoResendUnfulfilledCommands off, a command unanswered when its socket closes is dropped without ever settling', async () => {
    const client = new Redis({ port: proxy.port, host: '127.0.0.1', lazyConnect: true, autoResendUnfulfilledCommands: false, retryStrategy: () => 20 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const partition = proxy.partition({ direction: 'to-client' });
      const publish = track(client.publish('pinned', 'x'));
      const reconnected = new Promise((resolve) => client.once('ready', resolve));
      client.stream.destroy();
      await reconnected;
      // A round trip on the new socket: anything ioredis would settle for the old one is settled by now.
      expect(await client.ping()).toBe('PONG');
      expect(publish.settled()).toBe(false);
      partition.heal();
    } finally {
      await closeClient(client);
    }
  });
});

describe('an emit() whose PUBLISH may have reached Redis is never re-sent, and always settles', () => {
  let rig: FaultRig | undefined;
  let client: RedisPubSubClient | undefined;

  afterEach(async () => {
    await client?.close();
    await rig?.close();
    client = undefined;
    rig = undefined;
  });

  async function start(name: string, viaProxy: boolean, heartbeat: { intervalMs: number; timeoutMs: number } = FAST_HEARTBEAT): Promise<RedisPubSubClient> {
    rig = await startFaultRig({ name: `${name}-server` }, { redisConfig: { 'enable-debug-command': 'yes' } });
    client = new RedisPubSubClient({ url: viaProxy ? rig.proxy.url : rig.redis.url, name, heartbeat });
    await client.connect();
    return client;
  }

  const handled = (marker: string) => rig!.app.inbox.of('inbound').filter((item) => (item.data as { n?: string }).n === marker).length;

  it('muted return path: Redis delivers the PUBLISH, its answer never comes; the emit fails as "delivery unknown", handled once', async () => {
    const client = await start('muted-return', true);
    rig!.proxy.partition({ match: 'muted-return:pub', direction: 'to-client' });
    const emitted = track(firstValueFrom(client.emit('inbound', { n: 'muted' }), { defaultValue: undefined }));
    const result = await emitted.outcome;
    expect(result.ok).toBe(false);
    expect(result.error?.message).toMatch(/may or may not have been executed \(delivery unknown\)/);
    expect(client.getStats().handover?.cutOvers).toBe(1);
    // Had the PUBLISH been re-sent on the new socket, it would have gone out before this one.
    await firstValueFrom(client.emit('inbound', { n: 'after' }), { defaultValue: undefined });
    await rig!.app.inbox.waitFor(() => handled('after') === 1, 'the next event handled');
    expect(handled('muted')).toBe(1);
  });

  it('Redis stalled (DEBUG SLEEP) while a PUBLISH is in flight: the publisher is suspected, not killed; executed once, the emit succeeds', async () => {
    // The client's heartbeat verdict comes later than the server's: its PUBLISH is surely in flight when sent below.
    const client = await start('stalled-publish', false, { intervalMs: 200, timeoutMs: 1_500 });
    const sleeping = rig!.direct.call('DEBUG', 'SLEEP', '3');
    await waitFor(() => rig!.events.includes('suspect:subscriber'), { message: 'Redis is stalled: the server suspects its subscriber' });
    expect(client.getStats().connections.publisher.state).toBe('connected');
    const emitted = track(firstValueFrom(client.emit('inbound', { n: 'stalled' }), { defaultValue: undefined }));
    await waitFor(() => client.getStats().connections.publisher.state === 'suspect', { message: 'the client suspects its publisher' });
    await sleeping;
    expect(await emitted.outcome).toMatchObject({ ok: true });
    await firstValueFrom(client.emit('inbound', { n: 'after' }), { defaultValue: undefined });
    await rig!.app.inbox.waitFor(() => handled('after') === 1, 'the next event handled');
    expect(handled('stalled')).toBe(1);
    expect(client.getStats().handover?.resumes).toBeGreaterThanOrEqual(1);
  });
});
