import type { Redis } from 'ioredis';
import type { RedisPubSubOptions, RedisPubSubServer } from '../../lib/index.js';
import { closeClient, connectClient } from '../harness/clients.js';
import { FaultProxy } from '../harness/fault-proxy.js';
import { startRedis, type RedisServerHandle } from '../harness/redis.js';
import { waitFor } from '../harness/wait.js';
import { startTestApp, type StartedTestApp } from './test-app.js';

/** Fast heartbeats so fault tests finish quickly; the defaults are measured in bench/. */
export const FAST_HEARTBEAT = { intervalMs: 200, timeoutMs: 400 } as const;

export interface FaultRig {
  redis: RedisServerHandle;
  proxy: FaultProxy;
  app: StartedTestApp;
  /** A publisher connected straight to redis-server, never through the proxy. */
  direct: Redis;
  /** Every transport event, in order, as "name" or "name:connection". */
  events: string[];
  close(): Promise<void>;
}

/**
 * A Nest microservice whose two connections go through a fault proxy to a real redis-server.
 * `viaProxy: false` connects straight to Redis: the proxy runs in this process, so a test that
 * blocks the event loop would stall the "network" too.
 */
export async function startFaultRig(
  options: RedisPubSubOptions = {},
  { viaProxy = true, redisConfig }: { viaProxy?: boolean; redisConfig?: Record<string, string> } = {},
): Promise<FaultRig> {
  const redis = await startRedis({ config: redisConfig });
  const proxy = await FaultProxy.start({ host: redis.host, port: redis.port });
  const app = await startTestApp({ url: viaProxy ? proxy.url : redis.url, heartbeat: FAST_HEARTBEAT, ...options });
  const events: string[] = [];
  recordEvents(app.server, events);
  const direct = await connectClient(redis.url);
  let closing: Promise<void> | undefined;
  const rig: FaultRig = {
    redis,
    proxy,
    app,
    direct,
    events,
    close() {
      closing ??= (async () => {
        await closeClient(rig.direct);
        await app.close();
        await proxy.close();
        await redis.stop();
      })();
      return closing;
    },
  };
  return rig;
}

export function recordEvents(server: Pick<RedisPubSubServer, 'on'>, events: string[]): void {
  server.on('status', (state) => events.push(`status:${state}`));
  server.on('heartbeat-timeout', (info) => events.push(`heartbeat-timeout:${info.connection}`));
  server.on('probe-failed', () => events.push('probe-failed'));
  server.on('reconnecting', (info) => events.push(`reconnecting:${info.connection}`));
  server.on('reconnected', (info) => events.push(`reconnected:${info.connection}`));
  server.on('resubscribed', () => events.push('resubscribed'));
  server.on('suspect', (info) => events.push(`suspect:${info.connection}`));
  server.on('resumed', (info) => events.push(`resumed:${info.connection}`));
  server.on('cut-over', (info) => events.push(`cut-over:${info.connection}`));
}

/** Waits until the transport reports connected again after having lost its subscriber. */
export async function waitForResubscribed(rig: FaultRig, timeoutMs = 15_000): Promise<void> {
  await waitFor(() => rig.events.includes('resubscribed') && rig.app.server.getStats().state === 'connected', {
    timeoutMs,
    message: `resubscribed and connected; events: ${rig.events.join(', ')}`,
  });
}

/** Once the transport says connected, a single event published straight to Redis must be handled. */
export async function expectHandlesNewEvent(rig: FaultRig, marker: string, publisher: Redis = rig.direct): Promise<void> {
  const receivers = await publisher.publish('inbound', JSON.stringify({ data: marker }));
  expect(receivers).toBeGreaterThanOrEqual(1);
  await rig.app.inbox.waitFor((items) => items.some((i) => i.data === marker), `event "${marker}" handled after recovery`);
}
