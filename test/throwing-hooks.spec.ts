import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { RedisPubSubServer } from '../lib/index.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { delay, waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { listen } from './support/transport-utils.js';

describe('processing hooks', () => {
  let redis: RedisServerHandle;
  let publisher: Redis;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  const logger = new CaptureLogger();

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    Logger.overrideLogger(logger);
    redis = await startRedis();
    publisher = await connectClient(redis.url);
  });

  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await closeClient(publisher);
    await redis?.stop();
  });

  it('an end hook that throws (instrumentation bug) is neither an unhandled rejection nor a handler close() waits for', async () => {
    const server = new RedisPubSubServer({ url: redis.url, closeTimeoutMs: 3_000, name: 'hook-throws' });
    const handled: unknown[] = [];
    server.addHandler('inbound', async (data: unknown) => void handled.push(data), true);
    server.setOnProcessingEndHook(() => {
      throw new Error('tracer exploded');
    });
    await listen(server);
    await publisher.publish('inbound', JSON.stringify({ data: 1 }));
    await waitFor(() => handled.length === 1, { message: 'event handled' });
    await delay(50);
    const started = Date.now();
    await server.close();
    expect(unhandled.map(String)).toEqual([]);
    expect(logger.errors('Processing end hook failed')).toEqual(['Processing end hook failed: tracer exploded']);
    // The handler finished long ago: close() must not wait closeTimeoutMs for it.
    expect(Date.now() - started).toBeLessThan(1_500);
  });
});
