import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer, type RedisPubSubOptions } from '../lib/index.js';
import { resolveOptions } from '../lib/options.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { listen } from './support/transport-utils.js';

const TIMER = /must be a whole number of milliseconds from 1 to 2147483647/;
const resolve = (options: RedisPubSubOptions) => resolveOptions(options, 'test');

/** Every option that becomes a Node timer, as the options object that sets it. */
const TIMERS: Array<[string, (value: number) => RedisPubSubOptions]> = [
  ['heartbeat.intervalMs', (v) => ({ heartbeat: { intervalMs: v } })],
  ['heartbeat.timeoutMs', (v) => ({ heartbeat: { timeoutMs: v } })],
  ['retry.minDelayMs', (v) => ({ retry: { minDelayMs: v } })],
  ['retry.maxDelayMs', (v) => ({ retry: { maxDelayMs: v } })],
  ['closeTimeoutMs', (v) => ({ closeTimeoutMs: v })],
  ['requestTimeoutMs', (v) => ({ requestTimeoutMs: v })],
  ['offlineQueue.timeoutMs', (v) => ({ offlineQueue: { timeoutMs: v } })],
];

/** Counts and sizes: whole numbers from 1. */
const COUNTS: Array<[string, (value: number) => RedisPubSubOptions]> = [
  ['maxPayloadBytes', (v) => ({ maxPayloadBytes: v })],
  ['maxDepth', (v) => ({ maxDepth: v })],
  ['offlineQueue.maxSize', (v) => ({ offlineQueue: { maxSize: v } })],
  ['retry.maxAttempts', (v) => ({ retry: { maxAttempts: v } })],
];

describe('options are checked at construction', () => {
  describe.each(TIMERS)('timer %s', (field, set) => {
    // Node runs a timer of Infinity or above 2^31-1 ms after 1 ms: requestTimeoutMs: Infinity failed
    // every request in 2 ms, heartbeat.intervalMs: 2**31 sent 1,240 PINGs per second.
    it.each([Infinity, 2 ** 31, 1e12, 0, -1, 1.5, NaN])('refuses %p with a TypeError naming it', (value) => {
      expect(() => resolve(set(value))).toThrow(TypeError);
      expect(() => resolve(set(value))).toThrow(new RegExp(`option "${field.replace('.', '\\.')}" must be a whole number of milliseconds from 1 to 2147483647.*got ${String(value)}$`));
    });

    it('accepts 1 and 2^31-1', () => {
      expect(() => resolve(set(1))).not.toThrow();
      expect(() => resolve(set(2 ** 31 - 1))).not.toThrow();
    });
  });

  describe.each(COUNTS)('count %s', (field, set) => {
    it.each([0, -3, 2.5, NaN])('refuses %p', (value) => {
      expect(() => resolve(set(value))).toThrow(new RegExp(`option "${field.replace('.', '\\.')}" must be a whole number from 1`));
    });

    it('accepts any whole number from 1, however large (the depth walk cannot overflow the stack)', () => {
      expect(() => resolve(set(1))).not.toThrow();
      expect(() => resolve(set(Number.MAX_SAFE_INTEGER))).not.toThrow();
    });
  });

  it('retry.maxAttempts is a count, not a timer: Infinity (the default) means forever; the others refuse it', () => {
    expect(resolve({ retry: { maxAttempts: Infinity } }).retry.maxAttempts).toBe(Infinity);
    expect(resolve({}).retry.maxAttempts).toBe(Infinity);
    for (const [field, set] of COUNTS.filter(([name]) => name !== 'retry.maxAttempts')) {
      expect(() => resolve(set(Infinity))).toThrow(`option "${field}"`);
    }
  });

  it.each(['connectTimeout', 'commandTimeout', 'socketTimeout', 'disconnectTimeout'] as const)(
    'the ioredis timer redis.%s: 0 to 2^31-1 (ioredis reads 0 as "none"), Infinity refused',
    (field) => {
      expect(() => resolve({ redis: { [field]: Infinity } })).toThrow(`option "redis.${field}" must be a whole number of milliseconds from 0 to 2147483647`);
      expect(() => resolve({ redis: { [field]: 2 ** 31 } })).toThrow(TypeError);
      expect(() => resolve({ redis: { [field]: 0 } })).not.toThrow();
      expect(() => resolve({ redis: { [field]: 2 ** 31 - 1 } })).not.toThrow();
    },
  );

  it('refuses groups of the wrong type and never echoes a string value (it may be a secret in the wrong field)', () => {
    const secret = 'redis://:hunter2-secret@127.0.0.1:6379';
    const thrown = (options: unknown): string => {
      try {
        resolve(options as RedisPubSubOptions);
      } catch (error) {
        expect(error).toBeInstanceOf(TypeError);
        return (error as Error).message;
      }
      throw new Error('did not throw');
    };
    expect(thrown({ requestTimeoutMs: secret })).toBe(
      'nestjs-redis-pubsub: option "requestTimeoutMs" must be a whole number of milliseconds from 1 to 2147483647 (about 24.8 days; Node would run a longer timer after 1 ms), got a value of type string',
    );
    expect(thrown({ heartbeat: true })).toMatch(/option "heartbeat" must be an object or false/);
    expect(thrown({ retry: secret })).toMatch(/option "retry" must be an object, got a value of type string/);
    expect(thrown({ redis: null })).toMatch(/option "redis" must be an object, got null/);
    expect(thrown({ url: 6379 })).toMatch(/option "url" must be a string/);
    expect(thrown({ name: '' })).toMatch(/option "name" must be a non-empty string/);
    for (const options of [{ requestTimeoutMs: secret }, { retry: secret }, { maxDepth: secret }]) expect(thrown(options)).not.toContain('hunter2');
  });

  it('both constructors refuse a bad option before opening anything', () => {
    expect(() => new RedisPubSubClient({ requestTimeoutMs: Infinity })).toThrow(TypeError);
    expect(() => new RedisPubSubServer({ heartbeat: { intervalMs: 2 ** 31 } })).toThrow(TypeError);
  });
});

describe('timer options against a real Redis', () => {
  let redis: RedisServerHandle;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it('the largest accepted requestTimeoutMs is a real timeout: a request waits for its reply', async () => {
    const server = new RedisPubSubServer({ url: redis.url, name: 'long-timeout-server' });
    server.addHandler('slow.sum', async (numbers: number[]) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return numbers.reduce((a, b) => a + b, 0);
    });
    const client = new RedisPubSubClient({ url: redis.url, name: 'long-timeout-client', requestTimeoutMs: 2 ** 31 - 1 });
    try {
      await listen(server);
      await expect(firstValueFrom(client.send('slow.sum', [1, 2, 3]))).resolves.toBe(6);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('redis.connectTimeout: 0 (ioredis: no connect timeout) with heartbeats off still connects and delivers', async () => {
    const client = new RedisPubSubClient({ url: redis.url, name: 'no-connect-timeout', heartbeat: false, redis: { connectTimeout: 0 } });
    const server = new RedisPubSubServer({ url: redis.url, name: 'no-connect-timeout-server', heartbeat: false, redis: { connectTimeout: 0 } });
    server.addHandler('echo', async (value: unknown) => value);
    try {
      await listen(server);
      await client.connect();
      await expect(firstValueFrom(client.send('echo', 'hello'))).resolves.toBe('hello');
      expect(client.getStats().connections.publisher.lastError).toBeNull();
    } finally {
      await client.close();
      await server.close();
    }
  });
});
