import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../lib/index.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { startRedis, type RedisServerHandle, type StartRedisOptions } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT } from './support/fault-rig.js';
import { DURABLE_CHANNEL, startDurableApp, type DurableApp } from './support/durable-app.js';

/** Sequence-numbered durable events at a steady rate (one every 5 ms), each emit's outcome recorded. */
class SteadyPublisher {
  sent = 0;
  readonly resolved = new Set<number>();
  readonly failed = new Set<number>();
  private readonly timer: NodeJS.Timeout;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly client: RedisPubSubClient) {
    this.timer = setInterval(() => this.emitNext(), 5);
  }

  private emitNext(): void {
    const n = ++this.sent;
    const done = firstValueFrom(this.client.emit(DURABLE_CHANNEL, { n }), { defaultValue: undefined }).then(
      () => void this.resolved.add(n),
      () => void this.failed.add(n),
    );
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.inFlight]);
  }
}

interface Scenario {
  redis: RedisServerHandle;
  /** The server's way to Redis (when `serverViaProxy`). */
  proxy: FaultProxy;
  /** The client's own way to Redis (when `clientViaProxy`). */
  clientProxy: FaultProxy;
  app: DurableApp;
  client: RedisPubSubClient;
  publisher: SteadyPublisher;
}

/**
 * Starts Redis, a durable app and a client (each straight to Redis or through the fault proxy),
 * publishes steadily, injects `fault` once 30 events were handled, waits for the recovery and
 * 30 more events, stops publishing and waits for the last event that Redis accepted.
 */
async function throughFault(
  fault: (s: Scenario) => Promise<void>,
  { serverViaProxy = true, clientViaProxy = false, redisOptions = {} }: { serverViaProxy?: boolean; clientViaProxy?: boolean; redisOptions?: StartRedisOptions } = {},
): Promise<Scenario & { handled: number[] }> {
  const redis = await startRedis(redisOptions);
  const proxy = await FaultProxy.start({ host: redis.host, port: redis.port });
  const clientProxy = await FaultProxy.start({ host: redis.host, port: redis.port });
  cleanups.push(async () => {
    await proxy.close();
    await clientProxy.close();
    await redis.stop();
  });
  const app = await startDurableApp({ url: serverViaProxy ? proxy.url : redis.url, heartbeat: FAST_HEARTBEAT, name: 'durable-faults' });
  cleanups.push(() => app.close());
  const client = new RedisPubSubClient({ url: clientViaProxy ? clientProxy.url : redis.url, heartbeat: FAST_HEARTBEAT, durable: { [DURABLE_CHANNEL]: { maxLen: 100_000 } } });
  cleanups.push(() => client.close());
  await client.connect();
  const publisher = new SteadyPublisher(client);
  const scenario: Scenario = { redis, proxy, clientProxy, app, client, publisher };
  try {
    await app.inbox.waitFor((items) => items.length >= 30, 'events before the fault');
    await fault(scenario);
    await waitFor(() => app.events.resubscribed > 0 && app.server.getStats().state === 'connected', { timeoutMs: 20_000, message: 'resubscribed' });
    const mark = publisher.sent;
    await app.inbox.waitFor((items) => items.some((i) => (i.data as { n: number }).n > mark + 30), 'events after the recovery', 20_000);
  } finally {
    await publisher.stop();
  }
  const last = Math.max(...publisher.resolved);
  await app.inbox.waitFor((items) => items.some((i) => (i.data as { n: number }).n === last), `the last accepted event (${last})`, 20_000);
  return { ...scenario, handled: app.handled() };
}

/** Zero loss: every event Redis accepted was handled, once, in publishing order. */
function expectNothingLost({ handled, publisher, app }: Scenario & { handled: number[] }): void {
  expect(handled.length).toBeGreaterThan(60);
  const outOfOrder = handled.filter((n, i) => i > 0 && n <= handled[i - 1]);
  expect(outOfOrder).toEqual([]);
  const handledSet = new Set(handled);
  expect([...publisher.resolved].filter((n) => !handledSet.has(n))).toEqual([]);
  // Only events that were sent (an emit that failed after Redis executed it may still arrive).
  expect(handled.every((n) => n >= 1 && n <= publisher.sent)).toBe(true);
  expect(app.events.unrecoverable).toEqual([]);
  expect(app.events.gaps).toEqual([]);
  expect(app.server.getStats().messages.lost).toBe(0);
}

const cleanups: Array<() => Promise<void>> = [];

describe('durable channels lose nothing across the fault suite (steady sequence-numbered events, real redis-server)', () => {
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('blackhole: the silent subscriber is replaced (cut-over), then the missed range is replayed', async () => {
    const result = await throughFault(async ({ proxy }) => proxy.blackhole());
    expectNothingLost(result);
    expect(result.app.events.cutOvers).toBeGreaterThan(0);
    expect(result.app.events.recovered.some((r) => r.replayed > 0)).toBe(true);
  });

  it('reset: connections forcibly closed', async () => {
    const result = await throughFault(async ({ proxy }) => proxy.reset());
    expectNothingLost(result);
  });

  it('CLIENT KILL TYPE pubsub', async () => {
    const result = await throughFault(async ({ redis }) => void (await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub')), { serverViaProxy: false });
    expectNothingLost(result);
    expect(result.app.events.recovered.some((r) => r.replayed > 0)).toBe(true);
  });

  it('redis-server SIGKILLed and restarted with persistence (appendonly yes, appendfsync always)', async () => {
    const result = await throughFault(
      async ({ redis }) => {
        await redis.kill('SIGKILL');
        await redis.start();
      },
      { serverViaProxy: false, redisOptions: { config: { appendonly: 'yes', appendfsync: 'always' } } },
    );
    expectNothingLost(result);
  });

  it('slow consumer killed by client-output-buffer-limit pubsub', async () => {
    const result = await throughFault(
      async ({ redis }) => {
        // Flood from another process while this event loop is blocked, so the subscriber reads nothing.
        const flood = spawnSync('redis-benchmark', ['-h', redis.host, '-p', String(redis.port), '-c', '1', '-n', '20000', '-P', '100', '-q', 'PUBLISH', 'noise', 'x'.repeat(1024)], { encoding: 'utf8' });
        expect(flood.status).toBe(0);
      },
      { serverViaProxy: false, redisOptions: { config: { 'client-output-buffer-limit': 'pubsub 256kb 128kb 1' } } },
    );
    expect(readFileSync(join(result.redis.dir, 'redis.log'), 'utf8')).toMatch(/scheduled to be closed ASAP for overcoming of output buffer limits/);
    expectNothingLost(result);
  });

  it('reroute to a fresh Redis without the stream: what only the old Redis had is reported unrecoverable with the right count, the rest replayed in order', async () => {
    const result = await throughFault(
      async ({ proxy, clientProxy, publisher }) => {
        const fresh = await startRedis();
        cleanups.push(() => fresh.stop());
        // The server moves first; the client keeps publishing to the old Redis for 20 more events, then follows.
        await proxy.reroute({ host: fresh.host, port: fresh.port });
        const mark = publisher.resolved.size;
        await waitFor(() => publisher.resolved.size >= mark + 20, { message: '20 events published to the old Redis only' });
        await clientProxy.reroute({ host: fresh.host, port: fresh.port });
      },
      { clientViaProxy: true },
    );
    const { handled, app, publisher } = result;
    const outOfOrder = handled.filter((n, i) => i > 0 && n <= handled[i - 1]);
    expect(outOfOrder).toEqual([]);
    // Each publisher sequence number below the last one handled either was handled or is counted as unrecoverable.
    const missing = handled.at(-1)! - handled.length;
    expect(missing).toBeGreaterThanOrEqual(20);
    expect(app.events.unrecoverable.reduce((sum, u) => sum + u.missed, 0)).toBe(missing);
    expect(app.events.unrecoverable.every((u) => u.reason === 'stream-lost' && u.channel === DURABLE_CHANNEL)).toBe(true);
    expect(app.server.getStats().messages.lost).toBe(missing);
    expect(app.events.gaps).toEqual([]);
    expect(handled.at(-1)).toBe(Math.max(...publisher.resolved));
  });
});
