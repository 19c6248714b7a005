import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubStatus } from '../lib/index.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT } from './support/fault-rig.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

/**
 * After an outage the publisher is often back before the subscribers have resubscribed (a restart,
 * a failover): events held in the offline queue would reach nobody. Held events of a channel that had
 * subscribers wait, in order, for one to be back.
 */
describe('events held through an outage wait for the subscribers to be back', () => {
  let redis: RedisServerHandle;
  let toServer: FaultProxy;
  let toClient: FaultProxy;
  let app: StartedTestApp;
  let client: RedisPubSubClient;

  beforeEach(async () => {
    redis = await startRedis();
    toServer = await FaultProxy.start({ host: redis.host, port: redis.port });
    toClient = await FaultProxy.start({ host: redis.host, port: redis.port });
    app = await startTestApp({ url: toServer.url, heartbeat: FAST_HEARTBEAT });
    client = new RedisPubSubClient({ url: toClient.url, heartbeat: FAST_HEARTBEAT });
    await client.connect();
  });

  afterEach(async () => {
    await client?.close();
    await app?.close();
    await toClient?.close();
    await toServer?.close();
    await redis?.stop();
  });

  /** Both sides cut off; events emitted meanwhile are held by the client. */
  async function outage(): Promise<Array<Promise<unknown>>> {
    for (const proxy of [toServer, toClient]) {
      proxy.refuse(true);
      proxy.reset();
    }
    await waitFor(() => client.getStats().state === RedisPubSubStatus.RECONNECTING && app.server.getStats().state === RedisPubSubStatus.RECONNECTING);
    const sent = [2, 3, 4, 5].map((n) => firstValueFrom(client.emit('inbound', { n })));
    await waitFor(() => client.getStats().pending?.events === 4, { message: 'four events held' });
    return sent;
  }

  it('the publisher back first: the held events are sent again until the subscriber is back, then all arrive once, in order', async () => {
    await expect(firstValueFrom(client.emit('inbound', { n: 1 }))).resolves.toBe(1);
    const sent = await outage();
    toClient.refuse(false);
    await waitFor(() => client.getStats().connections.publisher.state === 'connected', { message: 'client publisher back' });
    // The first held event is out and reaches nobody; an event emitted now queues behind the held ones.
    const later = firstValueFrom(client.emit('inbound', { n: 6 }));
    await waitFor(() => client.getStats().pending?.events === 5, { message: 'the new event waits behind the held ones' });
    toServer.refuse(false);
    await expect(Promise.all([...sent, later])).resolves.toEqual([1, 1, 1, 1, 1]);
    await app.inbox.waitFor((items) => items.filter((i) => i.handler === 'inbound').length === 6);
    expect(app.inbox.of('inbound').map((i) => (i.data as { n: number }).n)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(app.server.getStats().messages.lost).toBe(0);
  });

  it('a channel nobody listened to is not held back: its held events go at once and resolve 0', async () => {
    await expect(firstValueFrom(client.emit('nobody', { n: 1 }))).resolves.toBe(0);
    for (const proxy of [toServer, toClient]) {
      proxy.refuse(true);
      proxy.reset();
    }
    await waitFor(() => client.getStats().state === RedisPubSubStatus.RECONNECTING);
    const sent = firstValueFrom(client.emit('nobody', { n: 2 }));
    await waitFor(() => client.getStats().pending?.events === 1);
    toClient.refuse(false);
    await expect(sent).resolves.toBe(0);
    expect(client.getStats().pending?.events).toBe(0);
  });
});
