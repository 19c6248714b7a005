import { RedisPubSubClient, RedisPubSubServer } from '../lib/index.js';

/** A SYN nobody answers must cost a heartbeat verdict, not ioredis' default of 10 s. */
describe('connect timeout', () => {
  it('is heartbeat.timeoutMs on both connections unless redis.connectTimeout is set', async () => {
    const derived = new RedisPubSubServer({ heartbeat: { intervalMs: 1_000, timeoutMs: 750 } });
    const explicit = new RedisPubSubClient({ heartbeat: { intervalMs: 1_000, timeoutMs: 750 }, redis: { connectTimeout: 5_000 } });
    const defaults = new RedisPubSubClient({ url: 'redis://127.0.0.1:6379' });
    try {
      expect(derived.unwrap().map((redis) => redis.options.connectTimeout)).toEqual([750, 750]);
      expect(explicit.unwrap().map((redis) => redis.options.connectTimeout)).toEqual([5_000, 5_000]);
      expect(defaults.unwrap().map((redis) => redis.options.connectTimeout)).toEqual([2_000, 2_000]);
    } finally {
      await Promise.all([derived.close(), explicit.close(), defaults.close()]);
    }
  });
});
