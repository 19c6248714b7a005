import { Logger } from '@nestjs/common';
import { RedisPubSubServer, RedisPubSubStatus } from '../lib/index.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { listen } from './support/transport-utils.js';

const PASSWORD = 's3cret-pw';

function serverFor(redis: RedisServerHandle): RedisPubSubServer {
  const server = new RedisPubSubServer({
    url: `redis://limited:${PASSWORD}@127.0.0.1:${redis.port}`,
    heartbeat: { intervalMs: 100, timeoutMs: 300 },
  });
  server.addHandler('allowed.one', async () => undefined, true);
  server.addHandler('secret.two', async () => undefined, true);
  return server;
}

describe('subscriptions Redis refuses (ACL NOPERM)', () => {
  let redis: RedisServerHandle;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  const logger = new CaptureLogger();

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    Logger.overrideLogger(logger);
    redis = await startRedis();
  });

  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await redis?.stop();
  });

  it('listen() rejects naming the refused channel, without an unhandled rejection', async () => {
    await redis.command('ACL', 'SETUSER', 'limited', 'reset', 'on', `>${PASSWORD}`, '~*', 'resetchannels', '&allowed.*', '&__nestjs-redis-pubsub:*', '+@all');
    const server = serverFor(redis);
    try {
      await expect(listen(server)).rejects.toThrow(/Redis refused 1 subscription\(s\): channel "secret.two": NOPERM/);
      expect(server.getStats().subscriptions.missing).toEqual(['channel:secret.two']);
      expect(JSON.stringify(server.getStats())).not.toContain(PASSWORD);
    } finally {
      await server.close();
    }
    expect(unhandled).toEqual([]);
  });

  it('after a reconnect, keeps retrying a refused subscription and reports connected once Redis accepts it', async () => {
    await redis.command('ACL', 'SETUSER', 'limited', 'reset', 'on', `>${PASSWORD}`, '~*', 'allchannels', '+@all');
    const server = serverFor(redis);
    const errors: string[] = [];
    server.on('error', (error) => errors.push(error.message));
    try {
      await listen(server);
      // Redis 7 disconnects clients subscribed to channels they may no longer use.
      await redis.command('ACL', 'SETUSER', 'limited', 'resetchannels', '&allowed.*', '&__nestjs-redis-pubsub:*');
      await waitFor(() => server.getStats().subscriptions.missing.includes('channel:secret.two'), { message: 'secret.two missing after reconnect' });
      expect(server.getStats().state).toBe(RedisPubSubStatus.RECONNECTING);
      await waitFor(() => errors.some((e) => e.includes('channel "secret.two": NOPERM')), { message: 'error event names the channel' });
      expect(logger.errors('channel "secret.two": NOPERM').length).toBeGreaterThan(0);

      await redis.command('ACL', 'SETUSER', 'limited', 'allchannels');
      await waitFor(() => server.getStats().state === RedisPubSubStatus.CONNECTED, { message: 'connected once allowed again' });
      expect(server.getStats().subscriptions.missing).toEqual([]);
    } finally {
      await server.close();
    }
    expect(unhandled).toEqual([]);
  });
});
