import type { RedisOptions } from 'ioredis';
import type { Deserializer, Serializer } from '@nestjs/microservices';
import { DEFAULT_DURABLE_MAX_LEN, type DurableChannelOptions } from './delivery/durable-stream.js';
import { DEFAULT_REQUIRE_RECEIVER, type RequireReceiverOptions } from './delivery/publish-confirm.js';
import { resolveClusterOptions, type RedisPubSubClusterOptions, type ResolvedClusterOptions } from './cluster/cluster-options.js';

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
  /** Redis Cluster: sharded pub/sub over the cluster's primaries (instead of `url`/`redis`). */
  cluster?: RedisPubSubClusterOptions;
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
  /**
   * Client: channels whose events are appended to a capped Redis Stream as they are published, so
   * servers whose handler says `@EventPattern(channel, { durable: true })` recover what they missed.
   */
  durable?: Record<string, DurableChannelOptions>;
  /**
   * Client: emit() fails when Redis delivered the event to no subscriber, after publishing it again
   * `retries` times. `true` takes the defaults. Off by default: emit() resolves to the receiver count.
   */
  requireReceiver?: boolean | RequireReceiverOptions;
  serializer?: Serializer;
  deserializer?: Deserializer;
}

export const DEFAULTS = {
  heartbeat: { intervalMs: 2_000, timeoutMs: 2_000 },
  retry: { minDelayMs: 50, maxDelayMs: 250, maxAttempts: Infinity },
  maxPayloadBytes: 1024 * 1024,
  maxDepth: 64,
  closeTimeoutMs: 10_000,
  requestTimeoutMs: 5_000,
  offlineQueue: { maxSize: 1_000, timeoutMs: 10_000 },
} as const;

export interface ResolvedOptions {
  url?: string;
  redis: RedisOptions;
  cluster?: ResolvedClusterOptions;
  name: string;
  heartbeat: Required<HeartbeatOptions> | false;
  retry: Required<RetryOptions>;
  maxPayloadBytes: number;
  maxDepth: number;
  closeTimeoutMs: number;
  requestTimeoutMs: number;
  offlineQueue: Required<OfflineQueueOptions>;
  durable: Record<string, DurableChannelOptions>;
  requireReceiver: Required<RequireReceiverOptions> | false;
}

/** Node runs a timer longer than this, or of Infinity, after 1 ms instead: such values are refused. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The ioredis options that are timers (ms); checked like ours, since a bad one also becomes a 1 ms timer. */
const REDIS_TIMER_OPTIONS = ['connectTimeout', 'commandTimeout', 'socketTimeout', 'disconnectTimeout'] as const;

function invalid(field: string, expected: string, value: unknown): TypeError {
  // A string is never echoed: it could be a URL or a password put in the wrong field.
  const got = typeof value === 'number' ? String(value) : value === null ? 'null' : `a value of type ${typeof value}`;
  return new TypeError(`nestjs-redis-pubsub: option "${field}" must be ${expected}, got ${got}`);
}

/** A timer: a whole number of ms that Node can actually wait for. */
function timerMs(value: unknown, fallback: number, field: string, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_TIMER_MS) {
    throw invalid(field, `a whole number of milliseconds from ${min} to ${MAX_TIMER_MS} (about 24.8 days; Node would run a longer timer after 1 ms)`, value);
  }
  return value;
}

/** A count or a size: a positive whole number; Infinity only where it means "no limit". */
function count(value: unknown, fallback: number, field: string, infinite = false): number {
  if (value === undefined) return fallback;
  if (infinite && value === Infinity) return value;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalid(field, `a whole number from 1${infinite ? ' (or Infinity: no limit)' : ''}`, value);
  }
  return value;
}

/** A nested group of options: an object (or `false` where that turns a feature off). */
function group<T>(value: T, field: string, allowFalse = false): T {
  if (value === undefined || (allowFalse && (value as unknown) === false)) return value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(field, allowFalse ? 'an object or false' : 'an object', value);
  }
  return value;
}

/**
 * Validates and completes the options. Every bad value is a TypeError at construction naming the
 * option, never a surprise later (Node silently turns a timer of Infinity or above 2^31-1 ms into 1 ms).
 */
export function resolveOptions(options: RedisPubSubOptions = {}, defaultName: string): ResolvedOptions {
  group(options, 'options');
  const hb = group(options.heartbeat, 'heartbeat', true);
  const heartbeat =
    hb === false
      ? false
      : {
          intervalMs: timerMs(hb?.intervalMs, DEFAULTS.heartbeat.intervalMs, 'heartbeat.intervalMs'),
          timeoutMs: timerMs(hb?.timeoutMs, DEFAULTS.heartbeat.timeoutMs, 'heartbeat.timeoutMs'),
        };
  const retryOptions = group(options.retry, 'retry');
  const retry = {
    minDelayMs: timerMs(retryOptions?.minDelayMs, DEFAULTS.retry.minDelayMs, 'retry.minDelayMs'),
    maxDelayMs: timerMs(retryOptions?.maxDelayMs, DEFAULTS.retry.maxDelayMs, 'retry.maxDelayMs'),
    // A count of attempts, not a timer: Infinity (the default) means forever.
    maxAttempts: count(retryOptions?.maxAttempts, DEFAULTS.retry.maxAttempts, 'retry.maxAttempts', true),
  };
  const queue = group(options.offlineQueue, 'offlineQueue');
  const redis = group(options.redis, 'redis') ?? {};
  for (const field of REDIS_TIMER_OPTIONS) timerMs(redis[field], 0, `redis.${field}`, 0);
  if (options.url !== undefined && typeof options.url !== 'string') throw invalid('url', 'a string', options.url);
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
    throw new TypeError('nestjs-redis-pubsub: option "name" must be a non-empty string');
  }
  const cluster = options.cluster === undefined ? undefined : resolveClusterOptions(options.cluster, timerMs, heartbeat ? heartbeat.timeoutMs : 1_000);
  if (cluster && (options.url !== undefined || options.redis !== undefined)) {
    throw new TypeError('nestjs-redis-pubsub: options "cluster" and "url"/"redis" exclude each other (per-node ioredis options go in "cluster.redisOptions")');
  }
  if (cluster && Object.keys(options.durable ?? {}).length > 0) {
    throw new TypeError('nestjs-redis-pubsub: option "durable" is not supported with "cluster" yet');
  }
  if (cluster) for (const field of REDIS_TIMER_OPTIONS) timerMs(cluster.redisOptions[field], 0, `cluster.redisOptions.${field}`, 0);
  return {
    url: options.url,
    redis: { ...redis },
    ...(cluster ? { cluster } : {}),
    name: options.name ?? defaultName,
    heartbeat,
    retry,
    maxPayloadBytes: count(options.maxPayloadBytes, DEFAULTS.maxPayloadBytes, 'maxPayloadBytes'),
    maxDepth: count(options.maxDepth, DEFAULTS.maxDepth, 'maxDepth'),
    closeTimeoutMs: timerMs(options.closeTimeoutMs, DEFAULTS.closeTimeoutMs, 'closeTimeoutMs'),
    requestTimeoutMs: timerMs(options.requestTimeoutMs, DEFAULTS.requestTimeoutMs, 'requestTimeoutMs'),
    offlineQueue: {
      maxSize: count(queue?.maxSize, DEFAULTS.offlineQueue.maxSize, 'offlineQueue.maxSize'),
      timeoutMs: timerMs(queue?.timeoutMs, DEFAULTS.offlineQueue.timeoutMs, 'offlineQueue.timeoutMs'),
    },
    requireReceiver: resolveRequireReceiver(options.requireReceiver),
    durable: Object.fromEntries(
      Object.entries(group(options.durable, 'durable') ?? {}).map(([channel, retention]) => {
        const field = `durable["${channel}"]`;
        group(retention, field);
        // maxAgeMs is not a Node timer (the script trims by stream id): any whole number of ms.
        const maxAgeMs = count(retention?.maxAgeMs, 0, `${field}.maxAgeMs`);
        return [channel, { maxLen: count(retention?.maxLen, DEFAULT_DURABLE_MAX_LEN, `${field}.maxLen`), ...(maxAgeMs > 0 ? { maxAgeMs } : {}) }];
      }),
    ),
  };
}

function resolveRequireReceiver(option: boolean | RequireReceiverOptions | undefined): Required<RequireReceiverOptions> | false {
  if (option === undefined || option === false) return false;
  const given = option === true ? {} : group(option, 'requireReceiver');
  const retries = given.retries ?? DEFAULT_REQUIRE_RECEIVER.retries;
  if (typeof retries !== 'number' || !Number.isSafeInteger(retries) || retries < 0) throw invalid('requireReceiver.retries', 'a whole number from 0', retries);
  return { retries, retryDelayMs: timerMs(given.retryDelayMs, DEFAULT_REQUIRE_RECEIVER.retryDelayMs, 'requireReceiver.retryDelayMs') };
}
