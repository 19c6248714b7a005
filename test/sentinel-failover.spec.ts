import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT, recordEvents } from './support/fault-rig.js';
import { startSentinel, type SentinelHandle } from './support/sentinel.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

describe('Sentinel failover', () => {
  let master: RedisServerHandle;
  let replica: RedisServerHandle;
  let sentinel: SentinelHandle;
  let app: StartedTestApp;

  afterEach(async () => {
    await app?.close();
    await sentinel?.stop();
    await replica?.stop();
    await master?.stop();
  });

  it('follows the promoted replica, resubscribes and handles events published to the new master', async () => {
    master = await startRedis();
    replica = await startRedis({ config: { replicaof: `${master.host} ${master.port}` } });
    await waitFor(async () => /master_link_status:up/.test((await replica.command('INFO', 'replication')) as string), {
      message: 'replica in sync',
    });
    sentinel = await startSentinel(master);
    app = await startTestApp({
      redis: { sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: sentinel.masterName },
      heartbeat: FAST_HEARTBEAT,
    });
    const events: string[] = [];
    recordEvents(app.server, events);

    await master.kill('SIGKILL');
    await waitFor(async () => (await sentinel.masterAddress()).port === replica.port, { timeoutMs: 20_000, message: 'Sentinel promoted the replica' });
    await waitFor(() => events.includes('resubscribed') && app.server.getStats().state === 'connected', {
      timeoutMs: 20_000,
      message: `resubscribed on the new master; events: ${events.join(', ')}`,
    });

    const publisher = await connectClient(replica.url);
    try {
      expect(await publisher.publish('inbound', JSON.stringify({ data: 'after-failover' }))).toBe(1);
      await app.inbox.waitFor((items) => items.some((i) => i.data === 'after-failover'));
    } finally {
      await closeClient(publisher);
    }
  });
});
