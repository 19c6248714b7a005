import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { RedisPubSubServer } from '../lib/index.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { listen } from './support/transport-utils.js';

/**
 * Event completion callbacks are bound once per channel route (the hot path allocates none):
 * failures must still name the channel the event came on, also for a pattern route shared by
 * many channels, and every event must be counted out exactly once so close() finds none running.
 */
describe('event completion accounting', () => {
  let redis: RedisServerHandle;
  let publisher: Redis;
  const logger = new CaptureLogger();

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    redis = await startRedis();
    publisher = await connectClient(redis.url);
  });

  afterAll(async () => {
    await closeClient(publisher);
    await redis?.stop();
  });

  it('names the concrete channel of each failure, on channel and pattern routes, and leaves nothing in flight', async () => {
    const server = new RedisPubSubServer({ name: 'completion', url: redis.url, closeTimeoutMs: 30_000 });
    let handled = 0;
    server.addHandler('jobs.sync', async () => {
      handled++;
      throw new Error('sync route failed');
    }, true);
    server.addHandler('tasks.*', async (data: { fail?: boolean }) => {
      handled++;
      if (data?.fail) throw new Error('pattern route failed');
    }, true, { psubscribe: true });
    try {
      await listen(server);
      for (let i = 0; i < 20; i++) {
        await publisher.publish('jobs.sync', JSON.stringify({ data: i }));
        await publisher.publish(`tasks.${i % 2 === 0 ? 'even' : 'odd'}`, JSON.stringify({ data: { fail: i % 4 < 2 } }));
      }
      await waitFor(() => handled === 40 && server.getStats().messages.handlerErrors === 30, { message: '40 events handled, 30 failures counted' });
      expect(logger.errors('Handler for channel "jobs.sync" failed')).toHaveLength(20);
      expect(logger.errors('Handler for channel "tasks.even" failed')).toHaveLength(5);
      expect(logger.errors('Handler for channel "tasks.odd" failed')).toHaveLength(5);
      expect(logger.errors('Handler for channel "tasks.*"')).toEqual([]);
    } finally {
      await server.close();
    }
    // close() waited for nothing: no event was left counted as running.
    expect(logger.lines.filter((line) => line.message.includes('still running'))).toEqual([]);
  });
});
