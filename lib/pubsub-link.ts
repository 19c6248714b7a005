import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { INTERNAL_CHANNEL_PREFIX, RedisPubSubStatus } from './constants.js';
import { Heartbeat } from './heartbeat.js';
import { ManagedConnection, type ConnectionRole, type ConnectionStats } from './managed-connection.js';
import type { DeliveryStats } from './delivery/delivery-guard.js';
import type { ResolvedOptions } from './options.js';
import { PathProbe } from './path-probe.js';
import { RetryLog } from './retry-log.js';
import { SubscriptionRegistry, type SubscriptionKind } from './subscription-registry.js';

export interface MessageCounters {
  received: number;
  invalid: number;
  handlerErrors: number;
  /** Events stamped by our clients that never arrived (gaps), plus durable events that could not be recovered. */
  lost: number;
  /** Repeated or older stamped events, dropped before the handler. */
  duplicates: number;
}

export interface RedisPubSubStats {
  name: string;
  kind: 'server' | 'client';
  state: RedisPubSubStatus;
  stateChangedAt: number;
  heartbeat: { intervalMs: number; timeoutMs: number } | false;
  connections: Record<ConnectionRole, ConnectionStats>;
  subscriptions: { expected: number; confirmed: number; missing: string[] };
  messages: MessageCounters;
  /** Clients only: requests awaiting a reply, events held in the offline queue. */
  pending?: { requests: number; events: number };
  /** Servers only: positions tracked for gap and duplicate detection, recent losses. */
  delivery?: DeliveryStats;
}

/** Typed events of `server.on()` / `client.on()`. */
export interface RedisPubSubEvents {
  status: [state: RedisPubSubStatus];
  reconnecting: [info: { connection: ConnectionRole; attempt: number; delayMs: number }];
  reconnected: [info: { connection: ConnectionRole; downtimeMs: number }];
  resubscribed: [info: { channels: number; patterns: number; durationMs: number; failed: string[] }];
  'heartbeat-timeout': [info: { connection: ConnectionRole; silentForMs: number }];
  'probe-failed': [info: { reason: string }];
  /** Events of one publisher on one channel never arrived (`missed` of them); the next one did. */
  gap: [info: GapInfo];
  /** A durable channel caught up from its stream (after a resubscription, a gap or a new epoch); `replayed` may be 0. */
  recovered: [info: { channel: string; replayed: number; durationMs: number; reason: 'gap' | 'new-epoch' | 'resubscribed' }];
  /** Events of a durable channel that can no longer be delivered: trimmed past retention, or the stream was lost. */
  unrecoverable: [info: { channel: string; missed: number; reason: 'trimmed' | 'stream-lost'; publisher?: string }];
  error: [error: Error];
}

export interface GapInfo {
  channel: string;
  /** Set when the event came through a pattern (PSUBSCRIBE) subscription. */
  pattern?: string;
  /** The publisher's key (random per client instance). */
  publisher: string;
  missed: number;
}

export type RedisPubSubEventName = keyof RedisPubSubEvents;

/** The callback type of each event, in the shape Nest's `Server`/`ClientProxy` generics expect. */
export type RedisPubSubEventCallbacks = { [E in RedisPubSubEventName]: (...args: RedisPubSubEvents[E]) => void };

/** Retry cadence for refused subscriptions when heartbeats are off. */
const DEFAULT_TICK_MS = 2_000;

export type MessageSink = (channel: string, payload: Buffer, pattern: string | undefined) => void;

/**
 * The pair of connections behind every server and client (one subscriber, one
 * publisher) and everything that keeps them honest: heartbeats on both, the
 * subscription registry replayed and verified after each reconnect, the path
 * probe, and the aggregate state reported to Nest and to health checks.
 */
export class PubSubLink {
  readonly subscriber: ManagedConnection;
  readonly publisher: ManagedConnection;
  readonly registry = new SubscriptionRegistry();
  readonly counters: MessageCounters = { received: 0, invalid: 0, handlerErrors: 0, lost: 0, duplicates: 0 };
  readonly events = new EventEmitter<RedisPubSubEvents>();
  readonly logger: Logger;
  private readonly probe?: PathProbe;
  private readonly heartbeats: Heartbeat[] = [];
  private ticker?: NodeJS.Timeout;
  /** Resubscriptions in flight, of any socket generation. */
  private resubscribing = 0;
  private state: RedisPubSubStatus = RedisPubSubStatus.CONNECTING;
  private stateChangedAt = Date.now();
  private everConnected = false;
  private started?: Promise<void>;
  private settleStart?: (error?: Error) => void;
  private readonly lostAt: Partial<Record<ConnectionRole, number>> = {};

  constructor(
    readonly kind: 'server' | 'client',
    readonly options: ResolvedOptions,
    private readonly sink: MessageSink,
  ) {
    this.logger = new Logger(`RedisPubSub:${options.name}`);
    this.subscriber = new ManagedConnection('subscriber', options);
    this.publisher = new ManagedConnection('publisher', options);
    for (const connection of [this.subscriber, this.publisher]) this.watch(connection);

    const heartbeat = options.heartbeat;
    if (heartbeat) {
      for (const connection of [this.subscriber, this.publisher]) {
        this.heartbeats.push(
          new Heartbeat(connection, heartbeat, (silentForMs, generation) => {
            this.logger.error(`${connection.role} connection silent for ${silentForMs} ms: tearing it down and reconnecting`);
            this.events.emit('heartbeat-timeout', { connection: connection.role, silentForMs });
            connection.kill(`heartbeat timeout: no data for ${silentForMs} ms`, generation);
          }),
        );
      }
      const channel = `${INTERNAL_CHANNEL_PREFIX}:probe:${randomUUID()}`;
      this.registry.add('channel', channel);
      this.probe = new PathProbe(
        channel,
        this.publisher,
        this.subscriber,
        heartbeat.timeoutMs,
        () => this.counters.received,
        (reason, generation) => {
          this.logger.error(`${reason}: resubscribing on a new subscriber connection`);
          this.events.emit('probe-failed', { reason });
          this.subscriber.kill(reason, generation);
        },
      );
    }

    const sub = this.subscriber.redis;
    const probeChannel = this.probe?.channel;
    sub.on('messageBuffer', (channelBuffer: Buffer, payload: Buffer) => {
      const channel = channelBuffer.toString();
      if (channel === probeChannel) return this.probe!.received(payload);
      this.sink(channel, payload, undefined);
    });
    sub.on('pmessageBuffer', (pattern: string | Buffer, channelBuffer: Buffer, payload: Buffer) => {
      const channel = channelBuffer.toString();
      // Probes and reply channels are nobody's events, even for a catch-all pattern like '*'.
      if (channel.startsWith(INTERNAL_CHANNEL_PREFIX)) return;
      this.sink(channel, payload, pattern.toString());
    });
  }

  get status(): RedisPubSubStatus {
    return this.state;
  }

  subscribe(kind: SubscriptionKind, name: string): void {
    this.registry.add(kind, name);
  }

  /** Connects both connections; resolves once every subscription is acknowledged. Retries in the background. */
  start(): Promise<void> {
    if (this.state === RedisPubSubStatus.CLOSED) return Promise.reject(new Error(`${this.options.name}: closed`));
    this.started ??= new Promise<void>((resolve, reject) => {
      this.settleStart = (error) => (error ? reject(error) : resolve());
      this.events.emit('status', this.state);
      this.subscriber.start();
      this.publisher.start();
      for (const beat of this.heartbeats) beat.start();
      const heartbeat = this.options.heartbeat;
      this.ticker = setInterval(() => this.tick(), heartbeat ? heartbeat.intervalMs : DEFAULT_TICK_MS);
    });
    return this.started;
  }

  /** Closes the subscriber first, so no message arrives while the caller drains. */
  async closeSubscriber(): Promise<void> {
    this.stopWatching();
    this.setState(RedisPubSubStatus.CLOSED);
    this.settleStart?.(new Error(`${this.options.name}: closed before connecting`));
    await this.subscriber.close();
  }

  async close(): Promise<void> {
    await this.closeSubscriber();
    await this.publisher.close();
  }

  on<E extends RedisPubSubEventName>(event: E, listener: (...args: RedisPubSubEvents[E]) => void): void {
    this.events.on(event, listener as never);
  }

  stats(): RedisPubSubStats {
    return {
      name: this.options.name,
      kind: this.kind,
      state: this.state,
      stateChangedAt: this.stateChangedAt,
      heartbeat: this.options.heartbeat,
      connections: { subscriber: this.subscriber.stats(), publisher: this.publisher.stats() },
      subscriptions: {
        expected: this.registry.expectedCount,
        confirmed: this.registry.confirmedCount,
        missing: this.registry.missing().slice(0, 20),
      },
      messages: { ...this.counters },
    };
  }

  reportError(error: Error): void {
    if (this.events.listenerCount('error') > 0) this.events.emit('error', error);
  }

  private stopWatching(): void {
    for (const heartbeat of this.heartbeats) heartbeat.stop();
    clearInterval(this.ticker);
    this.probe?.stop();
  }

  private watch(connection: ManagedConnection): void {
    const role = connection.role;
    connection.on('ready', (generation) => {
      const lostAt = this.lostAt[role];
      if (lostAt !== undefined) {
        delete this.lostAt[role];
        const downtimeMs = Date.now() - lostAt;
        this.logger.log(`${role} connection is back after ${downtimeMs} ms`);
        this.events.emit('reconnected', { connection: role, downtimeMs });
      }
      if (role === 'subscriber') void this.resubscribe(generation);
      else this.refreshState();
    });
    connection.on('lost', (reason) => {
      this.lostAt[role] = Date.now();
      if (role === 'subscriber') this.registry.reset();
      this.logger.warn(`${role} connection lost (${reason}): reconnecting`);
      this.refreshState();
    });
    const retryLog = new RetryLog();
    connection.on('reconnecting', (attempt, delayMs, cause) => {
      const unlogged = retryLog.admit(attempt, cause);
      if (unlogged !== null) {
        const since = unlogged > 0 ? ` (${unlogged} more failed since the last report)` : '';
        this.logger.warn(`${role} connection: attempt ${attempt} failed, next in ${delayMs} ms${since}: ${cause}`);
      }
      this.events.emit('reconnecting', { connection: role, attempt, delayMs });
      this.refreshState();
    });
    connection.on('gave-up', () => {
      this.logger.error(`${role} connection: giving up reconnecting`);
      this.refreshState();
      this.settleStart?.(new Error(`${this.options.name}: could not connect the ${role} connection to Redis`));
    });
    connection.on('error', (error) => {
      this.reportError(new Error(`${role} connection: ${connection.redactText(error.message)}`));
    });
  }

  /** Probes the path while connected; retries subscriptions Redis refused until it accepts them. */
  private tick(): void {
    if (this.state === RedisPubSubStatus.CONNECTED) this.probe?.send();
    else if (this.subscriber.isReady && !this.registry.complete && this.resubscribing === 0) {
      void this.resubscribe(this.subscriber.generation, false);
    }
  }

  private async resubscribe(generation: number, fresh = true): Promise<void> {
    const sub = this.subscriber;
    const startedAt = Date.now();
    if (fresh) this.registry.reset();
    this.resubscribing++;
    const result = await this.registry
      .subscribeMissing(sub.redis, () => sub.generation === generation && sub.isReady)
      .finally(() => this.resubscribing--);
    if (sub.generation !== generation || !sub.isReady) return;
    const failed = result.failed.map((f) => `${f.kind} "${f.name}": ${sub.redactText(f.error)}`);
    if (failed.length > 0) {
      const error = new Error(`${this.options.name}: Redis refused ${failed.length} subscription(s): ${failed.join('; ')}`);
      this.logger.error(error.message);
      this.reportError(error);
      if (!this.everConnected) this.settleStart?.(error);
    }
    if (this.everConnected) {
      const durationMs = Date.now() - startedAt;
      this.logger.log(`resubscribed ${result.confirmed} subscription(s) in ${durationMs} ms`);
      this.events.emit('resubscribed', {
        channels: this.registry.countOf('channel'),
        patterns: this.registry.countOf('pattern'),
        durationMs,
        failed,
      });
    }
    this.refreshState();
  }

  private refreshState(): void {
    if (this.state === RedisPubSubStatus.CLOSED) return;
    const connections = [this.subscriber, this.publisher];
    let next: RedisPubSubStatus;
    if (connections.some((c) => c.status === 'disconnected')) next = RedisPubSubStatus.DISCONNECTED;
    else if (connections.every((c) => c.isReady) && this.registry.complete) next = RedisPubSubStatus.CONNECTED;
    else next = this.everConnected ? RedisPubSubStatus.RECONNECTING : RedisPubSubStatus.CONNECTING;
    if (next === RedisPubSubStatus.CONNECTED && !this.everConnected) {
      this.everConnected = true;
      this.settleStart?.();
    }
    this.setState(next);
  }

  private setState(state: RedisPubSubStatus): void {
    if (this.state === state) return;
    this.state = state;
    this.stateChangedAt = Date.now();
    this.events.emit('status', state);
  }
}
