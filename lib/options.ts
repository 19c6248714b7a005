import type { RedisOptions } from 'ioredis';
import type { Deserializer, Serializer } from '@nestjs/microservices';

export interface HeartbeatOptions {
  /** How often each connection is PINGed (and the publish-to-subscribe path probed). */
  intervalMs?: number;
  /** A connection with no inbound bytes for this long after a PING is dead. */
  timeoutMs?: number;
}

export interface RetryOptions {
  /** First reconnect delay; doubles per attempt. */
  minDelayMs?: number;
  /** Ceiling of the reconnect delay. */
  maxDelayMs?: number;
  /** Give up after this many consecutive failed attempts. Unset: retry forever. */
  maxAttempts?: number;
}

export interface OfflineQueueOptions {
  /** Events held while the publisher is down; `emit()` fails at once beyond this. */
  maxSize?: number;
  /** An event still unsent after this long fails with a timeout error. */
  timeoutMs?: number;
}

/** Options shared by `RedisPubSubServer` and `RedisPubSubClient`. */
export interface RedisPubSubOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://` for TLS. */
  url?: string;
  /** ioredis options, passed through (host, port, username, password, db, tls, sentinels, name, ...). Wins over `url`. */
  redis?: RedisOptions;
  /** Names this instance in logs, `CLIENT LIST` and health output. */
  name?: string;
  /** Managed heartbeats; `false` turns them off. */
  heartbeat?: HeartbeatOptions | false;
  /** Reconnect backoff. A `redis.retryStrategy` of your own replaces it. */
  retry?: RetryOptions;
  /** Messages larger than this are rejected before parsing. */
  maxPayloadBytes?: number;
  /** JSON nested deeper than this is rejected. */
  maxDepth?: number;
  /** Server: how long `close()` waits for in-flight handlers. */
  closeTimeoutMs?: number;
  /** Client: default timeout of `send()`. */
  requestTimeoutMs?: number;
  /** Client: events emitted while the publisher is down. */
  offlineQueue?: OfflineQueueOptions;
  serializer?: Serializer;
  deserializer?: Deserializer;
}

export const DEFAULTS = {
  heartbeat: { intervalMs: 2_000, timeoutMs: 2_000 },
  retry: { minDelayMs: 50, maxDelayMs: 500, maxAttempts: Infinity },
  maxPayloadBytes: 1024 * 1024,
  maxDepth: 64,
  closeTimeoutMs: 10_000,
  requestTimeoutMs: 5_000,
  offlineQueue: { maxSize: 1_000, timeoutMs: 10_000 },
} as const;

export interface ResolvedOptions {
  url?: string;
  redis: RedisOptions;
  name: string;
  heartbeat: Required<HeartbeatOptions> | false;
  retry: Required<RetryOptions>;
  maxPayloadBytes: number;
  maxDepth: number;
  closeTimeoutMs: number;
  requestTimeoutMs: number;
  offlineQueue: Required<OfflineQueueOptions>;
}

function positive(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0)) {
    throw new TypeError(`nestjs-redis-pubsub: option "${field}" must be a positive number, got ${String(value)}`);
  }
  return value;
}

export function resolveOptions(options: RedisPubSubOptions = {}, defaultName: string): ResolvedOptions {
  const hb = options.heartbeat;
  const heartbeat =
    hb === false
      ? false
      : {
          intervalMs: positive(hb?.intervalMs, DEFAULTS.heartbeat.intervalMs, 'heartbeat.intervalMs'),
          timeoutMs: positive(hb?.timeoutMs, DEFAULTS.heartbeat.timeoutMs, 'heartbeat.timeoutMs'),
        };
  const retry = {
    minDelayMs: positive(options.retry?.minDelayMs, DEFAULTS.retry.minDelayMs, 'retry.minDelayMs'),
    maxDelayMs: positive(options.retry?.maxDelayMs, DEFAULTS.retry.maxDelayMs, 'retry.maxDelayMs'),
    maxAttempts: positive(options.retry?.maxAttempts, DEFAULTS.retry.maxAttempts, 'retry.maxAttempts'),
  };
  return {
    url: options.url,
    redis: { ...options.redis },
    name: options.name ?? defaultName,
    heartbeat,
    retry,
    maxPayloadBytes: positive(options.maxPayloadBytes, DEFAULTS.maxPayloadBytes, 'maxPayloadBytes'),
    maxDepth: positive(options.maxDepth, DEFAULTS.maxDepth, 'maxDepth'),
    closeTimeoutMs: positive(options.closeTimeoutMs, DEFAULTS.closeTimeoutMs, 'closeTimeoutMs'),
    requestTimeoutMs: positive(options.requestTimeoutMs, DEFAULTS.requestTimeoutMs, 'requestTimeoutMs'),
    offlineQueue: {
      maxSize: positive(options.offlineQueue?.maxSize, DEFAULTS.offlineQueue.maxSize, 'offlineQueue.maxSize'),
      timeoutMs: positive(options.offlineQueue?.timeoutMs, DEFAULTS.offlineQueue.timeoutMs, 'offlineQueue.timeoutMs'),
    },
  };
}
