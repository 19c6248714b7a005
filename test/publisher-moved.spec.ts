import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../lib/index.js';
import { assessTransport, DEFAULT_HEALTH_THRESHOLDS } from '../lib/health/index.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { startFaultRig, type FaultRig } from './support/fault-rig.js';

/**
 * A proxy or load balancer moves only the server's PUBLISHER socket to another Redis, where PING
 * still answers: the probe (and every reply) goes nowhere. Renewing the subscriber cannot fix it; a
 * renewed subscriber that still misses the probe must lead to rebuilding the publisher.
 */
describe('a publisher moved to another Redis is repaired', () => {
  let rig: FaultRig | undefined;
  let elsewhere: RedisServerHandle | undefined;
  let client: RedisPubSubClient | undefined;

  afterEach(async () => {
    await client?.close();
    await rig?.close();
    await elsewhere?.stop();
  });

  it('send() works again within a few heartbeat rounds, and health leaves up meanwhile', async () => {
    rig = await startFaultRig({ name: 'moved-pub' });
    elsewhere = await startRedis();
    client = new RedisPubSubClient({ url: rig.redis.url, name: 'moved-pub-client', requestTimeoutMs: 1_000 });
    await expect(firstValueFrom(client.send('math.sum', [1, 2]))).resolves.toBe(3);

    const server = rig.app.server;
    const verdicts: string[] = [];
    server.on('suspect', () => verdicts.push(assessTransport(server.getStats(), 'health', DEFAULT_HEALTH_THRESHOLDS, Date.now()).status));
    await rig.proxy.reroute({ host: elsewhere.host, port: elsewhere.port }, { match: 'moved-pub:pub' });

    await waitFor(() => rig!.events.includes('cut-over:publisher'), { timeoutMs: 15_000, message: `publisher replaced; events: ${rig!.events.join(', ')}` });
    await waitFor(() => firstValueFrom(client!.send('math.sum', [2, 3])).then((sum) => sum === 5, () => false), {
      timeoutMs: 15_000,
      message: 'a request answered again',
    });
    expect(rig.events).toContain('probe-failed');
    expect(verdicts.length).toBeGreaterThan(0);
    expect(verdicts.every((status) => status === 'degraded')).toBe(true);
    expect(server.getStats().state).toBe('connected');
  });
});
