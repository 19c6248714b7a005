import type { EventEmitter } from 'node:events';
import type { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { RedisPubSubStatus } from './constants.js';
import type { LinkSignals, MessageCounters, RedisPubSubEventName, RedisPubSubEvents, RedisPubSubStats } from './pubsub-link.js';

/**
 * What a server or client needs from the Redis side: one Redis (PubSubLink) or a cluster of
 * shards (ClusterLink). Publishing goes through `publish` so a cluster can route it to the
 * primary that serves the channel's slot.
 */
export interface TransportLink {
  readonly counters: MessageCounters;
  readonly events: EventEmitter<RedisPubSubEvents>;
  readonly signals: EventEmitter<LinkSignals>;
  readonly logger: Logger;
  /** A replaced subscriber socket is still delivering late events. */
  readonly splicing: boolean;
  readonly status: RedisPubSubStatus;
  /** Channels take the kind that fits the deployment: a shard channel on a cluster. */
  subscribe(kind: 'channel' | 'pattern', name: string): void;
  start(): Promise<void>;
  closeSubscriber(): Promise<void>;
  close(): Promise<void>;
  on<E extends RedisPubSubEventName>(event: E, listener: (...args: RedisPubSubEvents[E]) => void): void;
  stats(): RedisPubSubStats;
  reportError(error: Error): void;
  /**
   * PUBLISH (SPUBLISH on a cluster) on the connection that serves `channel`; resolves to Redis' receiver
   * count. On a cluster, a channel whose slot moved (MOVED) or has no primary yet is waited for and sent
   * again, unless `hold`: then it rejects with a RouteChanged error (Redis did not run it) for the
   * caller to hold it in order with the rest.
   */
  publish(channel: string, message: string, hold?: boolean): Promise<number>;
  /** Whether `publish(channel)` can be written now (else callers hold the event in the offline queue). */
  canPublish(channel: string): boolean;
  /** Whether Redis' receiver count for `channel` covers every subscriber (not on a cluster's global channels: per node). */
  countsEveryReceiver(channel: string): boolean;
  /** `listener` runs whenever a publisher becomes usable again (a new socket, a resumed or replaced one). */
  onPublisherUsable(listener: () => void): void;
  /** `listener` runs when the subscriber socket that holds `channel` is lost. */
  onSubscriberLost(channel: string, listener: (reason: string) => void): void;
  /** Errors of any connection, with a function that redacts secrets from their text. */
  onConnectionError(listener: (error: Error & { code?: unknown }, redact: (text: string) => string) => void): void;
  /** The ioredis instances in use: publisher(s) first, then subscriber(s). */
  unwrap(): Redis[];
}
