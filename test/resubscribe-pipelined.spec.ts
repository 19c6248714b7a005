import { Logger } from '@nestjs/common';
import { RedisPubSubServer, RedisPubSubStatus } from '../lib/index.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { listen } from './support/transport-utils.js';

const PASSWORD = 'pipelined-pw';
const CHANNELS = 2_000;
/** Lands in the third batch of 500, so batches before and after it are in flight with it. */
const REFUSED_AT = 1_200;

describe('pipelined resubscription against Redis ACLs', () => {
  let redis: RedisServerHandle;
  const logger = new CaptureLogger();

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it('after a reconnect, confirms every allowed channel of 2,000 and reports the one Redis refuses', async () => {
    await redis.command('ACL', 'SETUSER', 'many', 'reset', 'on', `>${PASSWORD}`, '~*', 'allchannels', '+@all');
    const server = new RedisPubSubServer({
      url: `redis://many:${PASSWORD}@127.0.0.1:${redis.port}`,
      heartbeat: { intervalMs: 100, timeoutMs: 300 },
    });
    const names = Array.from({ length: CHANNELS }, (_, i) => (i === REFUSED_AT ? 'secret.many' : `allowed.${i}`));
    for (const name of names) server.addHandler(name, async () => undefined, true);
    const resubscribed: Array<{ failed: string[] }> = [];
    server.on('resubscribed', (info) => resubscribed.push(info));
    server.on('error', () => undefined);
    try {
      await listen(server);
      const expected = server.getStats().subscriptions.expected;
      expect(expected).toBeGreaterThanOrEqual(CHANNELS);
      // Redis 7 disconnects a client subscribed to a channel its user may no longer use.
      await redis.command('ACL', 'SETUSER', 'many', 'resetchannels', '&allowed.*', '&__nestjs-redis-pubsub:*');
      await waitFor(() => resubscribed.some((r) => r.failed.length > 0), { message: 'a resubscription reported the refused channel' });

      const failed = resubscribed.find((r) => r.failed.length > 0)!.failed;
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatch(/^channel "secret\.many": NOPERM/);
      expect(server.getStats().subscriptions).toEqual({ expected, confirmed: expected - 1, missing: ['channel:secret.many'] });
      expect(server.getStats().state).toBe(RedisPubSubStatus.RECONNECTING);
      expect(logger.errors(/Redis refused 1 subscription\(s\): channel "secret\.many": NOPERM/).length).toBeGreaterThan(0);
      // Redis itself holds every allowed subscription.
      const counts = (await redis.command('PUBSUB', 'NUMSUB', 'allowed.0', 'allowed.1199', 'allowed.1201', `allowed.${CHANNELS - 1}`, 'secret.many')) as Array<string | number>;
      expect(counts.filter((_, i) => i % 2 === 1).map(Number)).toEqual([1, 1, 1, 1, 0]);
      const subscribed = (await redis.command('PUBSUB', 'CHANNELS', 'allowed.*')) as string[];
      expect(subscribed).toHaveLength(CHANNELS - 1);
    } finally {
      await server.close();
    }
    expect(JSON.stringify(logger.lines)).not.toContain(PASSWORD);
  });
});
