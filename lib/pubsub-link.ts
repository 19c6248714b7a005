import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { INTERNAL_CHANNEL_PREFIX, RedisPubSubStatus } from './constants.js';
import type { Redis } from 'ioredis';
import { ConnectionHandover, publisherDrainMs, SUBSCRIBER_DRAIN_MS, type HandoverPlan } from './connection-handover.js';
import { Heartbeat } from './heartbeat.js';
import { ManagedConnection, type ConnectionRole, type ConnectionStats, type ResumeOn } from './managed-connection.js';
import type { DeliveryStats } from './delivery/delivery-guard.js';
import type { ClusterStats } from './cluster/cluster-stats.js';
import type { ResolvedOptions } from './options.js';
import { PathProbe } from './path-probe.js';
import { RetryLog } from './retry-log.js';
import { Splice, spliceKey } from './splice.js';
import { SubscriptionRegistry, type SubscribeResult, type SubscriptionKind } from './subscription-registry.js';
import type { TransportLink } from './transport-link.js';

export interface MessageCounters {
  received: number;
  invalid: number;
  handlerErrors: number;
  /** Events stamped by our clients that never arrived (gaps), plus durable events that could not be recovered. */
  lost: number;
  /** Repeated or older stamped events, dropped before the handler. */
  duplicates: number;
  /** Batch handlers: messages dropped because `maxPending` messages were already queued. */
  dropped: number;
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
  /** Make-before-break: a connection suspected now, and what replacing silent connections did so far. */
  handover?: HandoverStats;
  /** Clients only: requests awaiting a reply, events held in the offline queue. */
  pending?: { requests: number; events: number };
  /** Servers only: positions tracked for gap and duplicate detection, recent losses. */
  delivery?: DeliveryStats;
  /** Cluster only: each shard in use, the connections open, slot map reads. */
  cluster?: ClusterStats;
}

export interface HandoverStats {
  /** The connection suspected right now (silent, or failing the probe) while a replacement is prepared. */
  suspect: { connection: ConnectionRole; reason: string; since: number } | null;
  /** Replacements that took over from a silent connection. */
  cutOvers: number;
  /** Suspect connections that showed life again first and were kept. */
  resumes: number;
  /** Events a replaced subscriber socket delivered late and that were handled (the new one never had them). */
  spliced: number;
  /** Copies dropped because the other socket of a splice had delivered them. */
  duplicatesDropped: number;
  /** Replaced sockets still open, delivering what they held. */
  draining: number;
}

/** On a cluster, events of one shard name its primary. */
interface OnNode {
  /** Cluster only: the shard's primary (`host:port`). */
  node?: string;
}

/** Typed events of `server.on()` / `client.on()`. */
export interface RedisPubSubEvents {
  status: [state: RedisPubSubStatus];
  reconnecting: [info: OnNode & { connection: ConnectionRole; attempt: number; delayMs: number }];
  reconnected: [info: OnNode & { connection: ConnectionRole; downtimeMs: number }];
  resubscribed: [info: OnNode & { channels: number; patterns: number; durationMs: number; failed: string[] }];
  'heartbeat-timeout': [info: OnNode & { connection: ConnectionRole; silentForMs: number }];
  'probe-failed': [info: OnNode & { reason: string }];
  /** Events of one publisher on one channel never arrived (`missed` of them); the next one did. */
  gap: [info: GapInfo];
  /** A durable channel caught up from its stream (after a resubscription, a gap or a new epoch); `replayed` may be 0. */
  recovered: [info: { channel: string; replayed: number; durationMs: number; reason: 'gap' | 'new-epoch' | 'resubscribed' }];
  /** Events of a durable channel that can no longer be delivered: trimmed past retention, or the stream was lost. */
  unrecoverable: [info: { channel: string; missed: number; reason: 'trimmed' | 'stream-lost'; publisher?: string }];
  /** A connection fell silent or failed the probe: kept open while a replacement is prepared beside it. */
  suspect: [info: OnNode & { connection: ConnectionRole; reason: string }];
  /** The suspect connection showed life before the replacement was ready: kept, replacement dropped. */
  resumed: [info: OnNode & { connection: ConnectionRole; suspectForMs: number }];
  /** The replacement took over from the still silent connection (subscriber: every subscription acknowledged). */
  'cut-over': [info: OnNode & { connection: ConnectionRole; suspectForMs: number }];
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

/** Internal signals for other parts of the library (not part of the public API). */
export interface LinkSignals {
  /**
   * A subscriber socket has every subscription acknowledged and is now the one delivering: after the
   * first connect, after a reconnect (events published meanwhile are lost), or after a cut-over
   * (events the old socket still holds are spliced in while it drains).
   */
  delivering: [info: { generation: number; cause: 'connect' | 'reconnect' | 'cut-over' }];
  /** The old subscriber socket of a cut-over is closed: no late event can arrive any more. */
  drained: [];
}

/** A PubSubLink that serves one shard (primary) of a Redis Cluster. */
export interface ShardRole {
  /** A shard channel in a slot of this shard, for the path probe (SSUBSCRIBE / SPUBLISH). */
  probeChannel: string;
  /** Redis said a slot is served elsewhere (MOVED, ASK, CLUSTERDOWN, an unsolicited SUNSUBSCRIBE): re-read the slot map. */
  redirected(reason: string): void;
}

/** Errors that mean "not here (yet)" on a cluster, not a refusal: the slot map decides where to go. */
export function isRedirect(error: string): boolean {
  return /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(error);
}

/**
 * The pair of connections behind every server and client (one subscriber, one
 * publisher) and everything that keeps them honest: heartbeats on both, the
 * subscription registry replayed and verified after each reconnect, the path
 * probe, and the aggregate state reported to Nest and to health checks.
 */
export class PubSubLink implements TransportLink {
  readonly subscriber: ManagedConnection;
  readonly publisher: ManagedConnection;
  readonly registry = new SubscriptionRegistry();
  readonly counters: MessageCounters = { received: 0, invalid: 0, handlerErrors: 0, lost: 0, duplicates: 0, dropped: 0 };
  readonly events = new EventEmitter<RedisPubSubEvents>();
  /** See LinkSignals. */
  readonly signals = new EventEmitter<LinkSignals>();
  readonly logger: Logger;
  private readonly probe?: PathProbe;
  /** Messages the current subscriber socket delivered (the probe's evidence of a live path). */
  private delivered = 0;
  private readonly heartbeats: Heartbeat[] = [];
  private readonly handovers: Partial<Record<ConnectionRole, ConnectionHandover>> = {};
  private ticker?: NodeJS.Timeout;
  /** Resubscriptions in flight, of any socket generation. */
  private resubscribing = 0;
  private state: RedisPubSubStatus = RedisPubSubStatus.CONNECTING;
  private stateChangedAt = Date.now();
  private everConnected = false;
  private started?: Promise<void>;
  private settleStart?: (error?: Error) => void;
  private readonly lostAt: Partial<Record<ConnectionRole, number>> = {};
  /** A replacement subscriber being subscribed, and what it delivered meanwhile (handled only if it takes over). */
  private standby?: { redis: Redis; registry: SubscriptionRegistry; held: Array<[string, Buffer, string | undefined]> };
  /** The old subscriber socket draining after a cut-over. */
  private splice?: Splice;
  private readonly handoverCounts = { cutOvers: 0, resumes: 0, spliced: 0, duplicatesDropped: 0 };
  private readonly standbyLogs: Record<ConnectionRole, RetryLog> = { subscriber: new RetryLog(), publisher: new RetryLog() };
  /** The path probe alternates the blame: a failure right after the subscriber was renewed points at the publisher. */
  private blamePublisherNext = false;

  constructor(
    readonly kind: 'server' | 'client',
    readonly options: ResolvedOptions,
    private readonly sink: MessageSink,
    private readonly shard?: ShardRole,
  ) {
    this.logger = new Logger(`RedisPubSub:${options.name}`);
    this.subscriber = new ManagedConnection('subscriber', options);
    this.publisher = new ManagedConnection('publisher', options);
    for (const connection of [this.subscriber, this.publisher]) this.watch(connection);

    const heartbeat = options.heartbeat;
    if (heartbeat) {
      for (const connection of [this.subscriber, this.publisher]) {
        this.heartbeats.push(
          new Heartbeat(connection, heartbeat, (silentForMs) => {
            this.events.emit('heartbeat-timeout', { connection: connection.role, silentForMs });
            this.suspect(connection, `heartbeat timeout: no data for ${silentForMs} ms`, 'any-byte');
          }),
        );
      }
      this.handovers.subscriber = new ConnectionHandover(this.subscriber, options.retry, heartbeat.timeoutMs, SUBSCRIBER_DRAIN_MS, this.subscriberPlan());
      const publisherDrain = publisherDrainMs(heartbeat);
      this.handovers.publisher = new ConnectionHandover(this.publisher, options.retry, heartbeat.timeoutMs, publisherDrain, this.publisherPlan(publisherDrain));
      const channel = shard ? shard.probeChannel : `${INTERNAL_CHANNEL_PREFIX}:probe:${randomUUID()}`;
      this.registry.add(shard ? 'shard' : 'channel', channel);
      this.probe = new PathProbe(
        channel,
        shard !== undefined,
        this.publisher,
        this.subscriber,
        heartbeat.timeoutMs,
        () => this.delivered,
        (reason) => this.probeFailed(reason),
        () => (this.blamePublisherNext = false),
        (error) => {
          // A demoted primary answers the probe's SPUBLISH with MOVED, while PING still answers.
          if (this.shard && isRedirect(error)) this.shard.redirected(`the path probe's SPUBLISH answered ${error}`);
        },
      );
    }
    this.listen(this.subscriber.redis);
  }

  /** A replaced subscriber socket is still draining: its late events are being spliced in. */
  get splicing(): boolean {
    return this.splice !== undefined;
  }

  get status(): RedisPubSubStatus {
    return this.state;
  }

  subscribe(kind: SubscriptionKind, name: string): void {
    this.registry.add(kind, name);
  }

  /** No longer wanted here (not resubscribed after a reconnect); what the socket still delivers for it is handled. */
  forget(kind: SubscriptionKind, name: string): void {
    this.registry.remove(kind, name);
    this.refreshState();
  }

  /** Subscribes what is wanted and not yet acknowledged on the current socket, now rather than at the next tick. */
  subscribeMissingNow(): void {
    if (this.subscriber.isReady && !this.registry.complete) void this.resubscribe(this.subscriber.generation, false);
    else this.refreshState();
  }

  /** The probe's shard channel moved to another shard with its slot: probe through one in a slot still served here. */
  moveProbe(channel: string): void {
    const probe = this.probe;
    if (!probe || probe.channel === channel) return;
    this.registry.remove('shard', probe.channel);
    probe.channel = channel;
    this.registry.add('shard', channel);
    this.subscribeMissingNow();
  }

  get probeChannel(): string | undefined {
    return this.probe?.channel;
  }

  publish(channel: string, message: string): Promise<number> {
    return this.publisher.redis.publish(channel, message);
  }

  canPublish(): boolean {
    return this.publisher.isReady;
  }

  countsEveryReceiver(): boolean {
    return true;
  }

  onPublisherUsable(listener: () => void): void {
    for (const event of ['ready', 'resumed', 'replaced'] as const) this.publisher.on(event, () => listener());
  }

  onSubscriberLost(_channel: string, listener: (reason: string) => void): void {
    this.subscriber.on('lost', listener);
  }

  onConnectionError(listener: (error: Error & { code?: unknown }, redact: (text: string) => string) => void): void {
    for (const connection of [this.subscriber, this.publisher]) connection.on('error', (error) => listener(error, (text) => connection.redactText(text)));
  }

  unwrap(): Redis[] {
    return [this.publisher.redis, this.subscriber.redis];
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
    this.handovers.subscriber?.stop();
    await this.subscriber.close();
  }

  async close(): Promise<void> {
    await this.closeSubscriber();
    this.handovers.publisher?.stop();
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
      handover: {
        suspect: this.suspectNow(),
        ...this.handoverCounts,
        draining: (this.handovers.subscriber?.drainingCount ?? 0) + (this.handovers.publisher?.drainingCount ?? 0),
      },
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
    connection.on('resumed', (suspectForMs) => {
      this.handoverCounts.resumes++;
      this.logger.log(`${role} connection showed life again after ${suspectForMs} ms: kept, its replacement dropped`);
      this.events.emit('resumed', { connection: role, suspectForMs });
      this.refreshState();
    });
    connection.on('replaced', () => this.refreshState());
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

  /** Routes what one subscriber socket delivers: the current one, a standby being subscribed, or one draining. */
  private listen(redis: Redis): void {
    const onMessage = (channelBuffer: Buffer, payload: Buffer) => {
      const channel = channelBuffer.toString();
      if (channel === this.probe?.channel) {
        // Only the current socket's tokens prove its path (a standby's or a draining one's say nothing of it).
        if (redis !== this.subscriber.redis) return;
        this.subscriber.messageArrived();
        return this.probe.received(payload);
      }
      this.route(redis, channel, payload, undefined);
    };
    redis.on('messageBuffer', onMessage);
    if (this.shard) {
      redis.on('smessageBuffer', onMessage);
      // ioredis 6 (DataHandler.handleUnsolicitedUnsubscribe) turns an SUNSUBSCRIBE that Redis pushes on
      // its own (the channel's slot is no longer served here) into a 'moved' event naming nothing, after
      // deleting the channel from its subscription set: the channels missing from that set are the ones
      // dropped. Pinned in test/ioredis-sharded-pubsub.spec.ts.
      redis.on('moved', () => this.shardChannelsDropped(redis));
    }
    redis.on('pmessageBuffer', (pattern: string | Buffer, channelBuffer: Buffer, payload: Buffer) => {
      const channel = channelBuffer.toString();
      // Probes and reply channels are nobody's events, even for a catch-all pattern like '*'.
      if (channel.startsWith(INTERNAL_CHANNEL_PREFIX)) return;
      this.route(redis, channel, payload, pattern.toString());
    });
  }

  private route(redis: Redis, channel: string, payload: Buffer, pattern: string | undefined): void {
    if (redis === this.subscriber.redis) {
      this.delivered++;
      this.subscriber.messageArrived();
      if (this.splice && !this.splice.fromNew(spliceKey(channel, pattern), payload)) return;
      return this.sink(channel, payload, pattern);
    }
    if (redis === this.standby?.redis) {
      this.standby.held.push([channel, payload, pattern]);
      return;
    }
    if (redis === this.splice?.old && this.splice.fromOld(spliceKey(channel, pattern), payload)) this.sink(channel, payload, pattern);
  }

  private shardChannelsDropped(redis: Redis): void {
    const registry = redis === this.subscriber.redis ? this.registry : redis === this.standby?.redis ? this.standby.registry : undefined;
    if (!registry) return;
    const set = redis.condition?.subscriber;
    const still = new Set(set ? set.channels('ssubscribe') : []);
    const dropped = [...registry.confirmedOf('shard')].filter((name) => !still.has(name));
    for (const name of dropped) registry.unconfirm('shard', name);
    if (dropped.length === 0) return;
    this.refreshState();
    this.shard?.redirected(`Redis unsubscribed ${dropped.length} shard channel(s) on its own: their slot is served elsewhere now`);
  }

  /** A silent (or probe-failing) connection: kept open, reported, and a replacement prepared beside it. */
  private suspect(connection: ManagedConnection, reason: string, resumeOn: ResumeOn): void {
    if (!connection.suspect(reason, resumeOn)) return;
    const role = connection.role;
    this.logger.warn(`${role} connection suspect (${reason}): kept open, preparing a replacement beside it`);
    this.events.emit('suspect', { connection: role, reason });
    this.refreshState();
  }

  private probeFailed(reason: string): void {
    this.events.emit('probe-failed', { reason });
    if (this.blamePublisherNext) {
      this.blamePublisherNext = false;
      // A renewed (or proven) subscriber still misses the probe: the publisher is on the wrong path.
      this.suspect(this.publisher, `${reason}, again after the subscriber was renewed`, 'never');
    } else {
      this.blamePublisherNext = true;
      this.suspect(this.subscriber, reason, 'message');
    }
  }

  private suspectNow(): HandoverStats['suspect'] {
    for (const connection of [this.subscriber, this.publisher]) {
      const since = connection.suspectedAt;
      if (since > 0) return { connection: connection.role, reason: connection.stats().lastError ?? '', since };
    }
    return null;
  }

  private subscriberPlan(): HandoverPlan {
    return {
      prepare: async (redis, stillWanted) => {
        const registry = this.registry.fork();
        this.standby = { redis, registry, held: [] };
        this.listen(redis);
        await registry.subscribeMissing(redis, stillWanted);
        // Refused subscriptions (ACL) are refused on the old socket too: it must not have anything the new one lacks.
        return registry.covers(this.registry);
      },
      discarded: (redis) => {
        if (this.standby?.redis === redis) this.standby = undefined;
      },
      cutOver: (old, suspectForMs) => {
        const standby = this.standby!;
        this.standby = undefined;
        this.registry.adopt(standby.registry);
        this.splice = new Splice(old);
        this.handoverCounts.cutOvers++;
        this.logger.warn(
          `subscriber connection replaced: the replacement had every subscription acknowledged while the old one stayed silent for ${suspectForMs} ms; ` +
            `the old one drains for up to ${SUBSCRIBER_DRAIN_MS} ms`,
        );
        this.events.emit('cut-over', { connection: 'subscriber', suspectForMs });
        this.events.emit('resubscribed', {
          channels: this.registry.countOf('channel'),
          patterns: this.registry.countOf('pattern'),
          durationMs: suspectForMs,
          failed: [],
        });
        this.refreshState();
        for (const [channel, payload, pattern] of standby.held) this.route(this.subscriber.redis, channel, payload, pattern);
        this.signals.emit('delivering', { generation: this.subscriber.generation, cause: 'cut-over' });
      },
      drained: (old, cause) => {
        const splice = this.splice;
        if (splice?.old !== old) return;
        this.splice = undefined;
        this.handoverCounts.spliced += splice.spliced;
        this.handoverCounts.duplicatesDropped += splice.duplicates;
        this.logger.log(`old subscriber connection closed (${cause}): ${splice.spliced} late event(s) handled, ${splice.duplicates} duplicate(s) dropped`);
        this.signals.emit('drained');
      },
      failed: (reason, attempt) => this.standbyFailed('subscriber', reason, attempt),
    };
  }

  private publisherPlan(drainMs: number): HandoverPlan {
    return {
      cutOver: (_old, suspectForMs) => {
        this.handoverCounts.cutOvers++;
        this.logger.warn(
          `publisher connection replaced after ${suspectForMs} ms; commands still unanswered on the old one settle within ${drainMs} ms`,
        );
        this.events.emit('cut-over', { connection: 'publisher', suspectForMs });
        this.refreshState();
      },
      failed: (reason, attempt) => this.standbyFailed('publisher', reason, attempt),
    };
  }

  private standbyFailed(role: ConnectionRole, reason: string, attempt: number): void {
    const unlogged = this.standbyLogs[role].admit(attempt, reason);
    if (unlogged === null) return;
    const since = unlogged > 0 ? ` (${unlogged} more failed since the last report)` : '';
    this.logger.warn(`${role} connection: replacement attempt ${attempt} failed${since} (${reason}); retrying`);
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
    this.takeRedirects(result);
    const failed = result.failed.map((f) => `${f.kind} "${f.name}": ${sub.redactText(f.error)}`);
    if (failed.length > 0) {
      const error = new Error(`${this.options.name}: Redis refused ${failed.length} subscription(s): ${failed.join('; ')}`);
      this.logger.error(error.message);
      this.reportError(error);
      if (!this.everConnected) this.settleStart?.(error);
    }
    const cause = this.everConnected ? 'reconnect' : 'connect';
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
    if (this.registry.complete) this.signals.emit('delivering', { generation, cause });
  }

  /** On a cluster, "served elsewhere" is news for the slot map, not a refusal: it is retried once the map is re-read. */
  private takeRedirects(result: SubscribeResult): void {
    if (!this.shard) return;
    const redirected = result.failed.filter((f) => isRedirect(f.error));
    if (redirected.length === 0) return;
    result.failed = result.failed.filter((f) => !isRedirect(f.error));
    this.shard.redirected(`${redirected.length} subscription(s) answered ${redirected[0]!.error}`);
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
