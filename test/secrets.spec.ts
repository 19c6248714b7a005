import { inspect } from 'node:util';
import { Logger } from '@nestjs/common';
import { RedisPubSubClient, RedisPubSubServer, type RedisPubSubEventName } from '../lib/index.js';
import { RedisPubSubHealthIndicator } from '../lib/health/index.js';
import { redact } from '../lib/redact.js';
import { startRedis, stopAllRedis, waitFor, type RedisServerHandle } from './harness/redis.js';
import { CaptureLogger } from './support/capture-logger.js';
import { listen } from './support/transport-utils.js';

/** Passwords with the characters that break naive URL redaction: "@", ":" and "/". */
const SECRET = 'pw-Zx81@never:show/me';
const WRONG = 'wrong-Qp42@never:show/me-either';
const FORBIDDEN = [SECRET, WRONG, encodeURIComponent(SECRET), encodeURIComponent(WRONG), 'never:show', 'show/me', 'Zx81', 'Qp42'];

function expectNoSecret(text: string): void {
  for (const secret of FORBIDDEN) expect(text).not.toContain(secret);
}

const EVENTS: RedisPubSubEventName[] = ['status', 'reconnecting', 'reconnected', 'resubscribed', 'heartbeat-timeout', 'probe-failed', 'error'];

describe('no password in option errors, logs, stats, events or health output', () => {
  it('redact(): a password containing "@" is hidden whole, and known secrets are hidden before URLs are rewritten', () => {
    expect(redact('connect to redis://:sec@ret@10.0.0.1:6379/0 failed')).toBe('connect to redis://:***@10.0.0.1:6379/0 failed');
    expect(redact('redis://alice:p@ss:w@host:1')).toBe('redis://alice:***@host:1');
    const text = redact(`redis://bob:${SECRET}@host:6379 and ${SECRET}`, [SECRET]);
    expectNoSecret(text);
    expect(text).toBe('redis://bob:***@host:6379 and ***');
  });

  it.each([
    ['a space in the password', `redis://:${SECRET} x@127.0.0.1:6379`],
    ['a port that is not a number', `redis://user:${encodeURIComponent(SECRET)}@127.0.0.1:63x79`],
    ['a port out of range', `redis://:${encodeURIComponent(SECRET)}@127.0.0.1:99999`],
    ['a broken percent-encoding', `redis://:${encodeURIComponent(SECRET)}%ZZ@127.0.0.1:6379`],
    ['an unterminated IPv6 host', `rediss://user:${encodeURIComponent(SECRET)}@[::1:6379`],
  ])('a malformed url (%s) is a TypeError that shows no part of the password', (_name, url) => {
    for (const create of [() => new RedisPubSubClient({ url }), () => new RedisPubSubServer({ url })]) {
      let thrown: unknown;
      try {
        create();
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(TypeError);
      expect((thrown as Error).message).toMatch(/^nestjs-redis-pubsub: option "url" is not a valid Redis URL/);
      // What a log line, a crash report or console.log(error) would print: message, stack, own properties (ioredis' error had `input`).
      expectNoSecret(inspect(thrown, { depth: 5, showHidden: true }));
      expect((thrown as Error).cause).toBeUndefined();
    }
  });

  describe('against a password-protected redis-server', () => {
    let redis: RedisServerHandle;
    const logger = new CaptureLogger();
    const instances: Array<{ close(): Promise<void> }> = [];

    beforeAll(async () => {
      redis = await startRedis({ password: SECRET });
      Logger.overrideLogger(logger);
    });

    afterAll(async () => {
      await Promise.all(instances.map((instance) => instance.close()));
      await stopAllRedis();
    });

    it('a wrong password: the cause is logged (redacted, rate-limited), and no secret appears anywhere', async () => {
      const retry = { minDelayMs: 5, maxDelayMs: 10 };
      const good = new RedisPubSubServer({ url: `redis://:${encodeURIComponent(SECRET)}@127.0.0.1:${redis.port}`, name: 'good-server' });
      good.addHandler('orders.created', async () => undefined, true);
      const badUrl = new RedisPubSubClient({ url: `redis://user:${encodeURIComponent(WRONG)}@127.0.0.1:${redis.port}`, name: 'bad-url', retry });
      const badOptions = new RedisPubSubClient({ redis: { host: '127.0.0.1', port: redis.port, password: WRONG }, name: 'bad-options', retry });
      instances.push(good, badUrl, badOptions);

      const seen: string[] = [];
      for (const instance of [good, badUrl, badOptions]) {
        for (const event of EVENTS) {
          instance.on(event, (payload: unknown) =>
            seen.push(`${event} ${payload instanceof Error ? `${payload.message} ${payload.stack}` : JSON.stringify(payload)}`),
          );
        }
      }
      await listen(good);
      const started = Date.now();
      for (const client of [badUrl, badOptions]) client.connect().catch(() => undefined);
      // Many failed attempts (a few ms apart), so that an unthrottled log would show many lines.
      await waitFor(() => [badUrl, badOptions].every((client) => client.getStats().connections.publisher.attempt >= 30), {
        message: 'the wrong password was not retried',
      });
      const elapsedMs = Date.now() - started;

      for (const name of ['bad-url', 'bad-options']) {
        const lines = logger.lines.filter((line) => line.context === `RedisPubSub:${name}` && /^publisher connection: attempt/.test(line.message));
        // The reason is in the log (before, only "attempt 1 failed, next in 40 ms"; WRONGPASS was only in getStats())...
        expect(lines[0]).toMatchObject({ level: 'warn' });
        expect(lines[0]!.message).toMatch(/^publisher connection: attempt 1 failed, next in \d+ ms: WRONGPASS invalid username-password pair/);
        // ...and an outage does not flood it: one line, then at most one per 10 s of the same failure.
        expect(lines.length).toBeLessThanOrEqual(1 + Math.floor(elapsedMs / 10_000));
      }

      const indicator = new RedisPubSubHealthIndicator();
      const everything = [
        ...logger.lines.map((line) => `${line.level} ${line.context} ${line.message}`),
        ...seen,
        ...[good, badUrl, badOptions].map((instance) => JSON.stringify(instance.getStats())),
        ...[indicator.isHealthy(), indicator.isReady(), indicator.isAlive()].map((result) => JSON.stringify(result)),
      ].join('\n');
      expect(everything).toContain('WRONGPASS');
      expect(seen.some((line) => line.startsWith('error '))).toBe(true);
      expectNoSecret(everything);
    });
  });
});
