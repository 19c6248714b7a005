/**
 * A server subscribed to many channels (resubscribe section): ours (RedisPubSubServer) or Nest's
 * built-in ServerRedis (what Transport.REDIS instantiates), driven without a Nest app so that
 * 50,000 handlers can be registered with addHandler(). Reports, for the first reconnect after
 * `arm`, when its subscriber socket connected and when an event on the last channel it
 * subscribes was handled again (Redis acknowledges SUBSCRIBEs in order, so that is when every
 * channel is back). Both times are taken in this process, on one clock.
 */
import { ServerRedis } from '@nestjs/microservices';
import type { Redis } from 'ioredis';
import { RedisPubSubServer } from '../../lib/index.js';
import { config, emitToParent, nowNs, serve } from '../support/ipc.js';
import { manyChannel } from '../support/payloads.js';

export interface ManyChannelsConfig {
  kind: 'pubsub' | 'nest-redis';
  host: string;
  port: number;
  channels: number;
  nestRedis?: { retryAttempts?: number; retryDelay?: number };
}

const cfg = config<ManyChannelsConfig>();
const last = manyChannel(cfg.channels - 1);
let connectNs: number | undefined;
let handledNs: number | undefined;
let resubscribedNs: number | undefined;
let armed = false;
let onProgress: (() => void) | undefined;

const server =
  cfg.kind === 'pubsub'
    ? new RedisPubSubServer({ url: `redis://${cfg.host}:${cfg.port}` })
    : new ServerRedis({ host: cfg.host, port: cfg.port, ...cfg.nestRedis });
const noop = async () => undefined;
for (let i = 0; i < cfg.channels - 1; i++) server.addHandler(manyChannel(i), noop, true);
server.addHandler(
  last,
  async () => {
    if (!armed || connectNs === undefined || handledNs !== undefined) return;
    handledNs = nowNs();
    onProgress?.();
  },
  true,
);
if (server instanceof RedisPubSubServer) {
  server.on('resubscribed', () => {
    if (!armed || connectNs === undefined || resubscribedNs !== undefined) return;
    resubscribedNs = nowNs();
    onProgress?.();
  });
}

serve({
  /** Forgets the previous reconnect: the next one is measured. */
  arm() {
    armed = true;
    connectNs = handledNs = resubscribedNs = undefined;
    return true;
  },
  /** Resolves once the last channel handled an event after a reconnect (and ours reported `resubscribed`). */
  result() {
    const done = () => handledNs !== undefined && (resubscribedNs !== undefined || !(server instanceof RedisPubSubServer));
    const answer = () => ({ connectNs, handledNs, resubscribedNs });
    if (done()) return answer();
    return new Promise((resolve) => (onProgress = () => done() && resolve(answer())));
  },
  exit() {
    setImmediate(() => process.exit(0));
    return true;
  },
});

server.listen((error?: unknown) => {
  if (error) {
    emitToParent('fatal', String(error));
    setTimeout(() => process.exit(1), 100);
    return;
  }
  const subscriber = server.unwrap<[Redis, Redis]>()[1];
  // ioredis emits 'connect' once the new socket is up, before its handshake and any SUBSCRIBE.
  subscriber.on('connect', () => {
    if (armed && connectNs === undefined) connectNs = nowNs();
  });
  emitToParent('ready', { pid: process.pid });
});
