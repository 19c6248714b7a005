import { RedisPubSubClient } from '../lib/index.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { delay } from './harness/wait.js';
import { connectionNames } from './support/transport-utils.js';

describe('close() races', () => {
  let redis: RedisServerHandle;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it('client close() racing a path-probe PUBLISH: no probe verdict, error log or event after close', async () => {
    const heartbeat = { intervalMs: 100, timeoutMs: 1_000 };
    const client = new RedisPubSubClient({ url: redis.url, heartbeat, name: 'probe-close' });
    const events: string[] = [];
    client.on('probe-failed', (info) => events.push(info.reason));
    await client.connect();
    const [publisher] = client.unwrap();
    // Timing hook only (the real PUBLISH still goes to the real Redis): the app shuts down as a probe round starts.
    const publish = publisher.publish.bind(publisher) as (...args: unknown[]) => Promise<number>;
    let closing: Promise<void> | undefined;
    (publisher as unknown as { publish: unknown }).publish = (...args: unknown[]) => {
      if (String(args[0]).includes(':probe:')) closing ??= client.close();
      return publish(...args);
    };
    while (!closing) await delay(10);
    await closing;
    // The probe's PUBLISH answer arrives after stop(): it either fails at once (0 receivers) or schedules a
    // verdict timer that outlives close() and fails timeoutMs later. Both report a bogus "probe-failed".
    await delay(heartbeat.timeoutMs + 300);
    expect(events).toEqual([]);
  });

  it('connect() after close() neither reopens connections nor hangs', async () => {
    const client = new RedisPubSubClient({ url: redis.url, name: 'late-connect' });
    await client.close();
    const outcome = await Promise.race([
      client.connect().then(
        () => 'resolved',
        (error: Error) => `rejected: ${error.message}`,
      ),
      delay(3_000).then(() => 'still pending after 3 s'),
    ]);
    const names = await connectionNames(redis, 'late-connect');
    // Clean up whatever the late connect() opened, so this test leaves nothing behind.
    (client as unknown as { link: { stopWatching(): void } }).link.stopWatching();
    const [pub, sub] = client.unwrap();
    pub.disconnect();
    sub.disconnect();
    expect(names).toEqual([]);
    expect(outcome).toMatch(/^rejected/);
  });
});
