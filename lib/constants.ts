/** Transport id: `@EventPattern('x', REDIS_PUBSUB_TRANSPORT)` binds a handler to this transport only. */
export const REDIS_PUBSUB_TRANSPORT: unique symbol = Symbol.for('nestjs-redis-pubsub');

/**
 * States reported by `status` and `getStats().state`.
 * A runtime object (not a `const enum`) so plain JavaScript and `isolatedModules` builds can use it.
 */
export const RedisPubSubStatus = {
  /** First connection attempt, or subscriptions not yet acknowledged. */
  CONNECTING: 'connecting',
  /** Both connections up, every subscription acknowledged by Redis. */
  CONNECTED: 'connected',
  /** A connection was lost; reconnecting (and resubscribing) with backoff. */
  RECONNECTING: 'reconnecting',
  /** Gave up: `retry.maxAttempts` exhausted or the user's `retryStrategy` stopped. */
  DISCONNECTED: 'disconnected',
  /** `close()` was called. */
  CLOSED: 'closed',
} as const;
export type RedisPubSubStatus = (typeof RedisPubSubStatus)[keyof typeof RedisPubSubStatus];

/** Prefix of the channels this library owns (reply channels, path probes). */
export const INTERNAL_CHANNEL_PREFIX = '__nestjs-redis-pubsub';

/** Every client's own reply channel starts with this; the server replies nowhere else (or to Nest's `<channel>.reply`). */
export const REPLY_CHANNEL_PREFIX = `${INTERNAL_CHANNEL_PREFIX}:reply:`;
