import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { retryDelay } from '../backoff.js';
import { INTERNAL_CHANNEL_PREFIX, RedisPubSubStatus } from '../constants.js';
import { errorText } from '../error-text.js';
import { RetryLog } from '../retry-log.js';
import type { ConnectionRole, ConnectionStats } from '../managed-connection.js';
import type { ResolvedOptions } from '../options.js';
import {
  isRedirect,
  PubSubLink,
  type HandoverStats,
  type LinkSignals,
  type MessageCounters,
  type MessageSink,
  type RedisPubSubEventName,
  type RedisPubSubEvents,
  type RedisPubSubStats,
} from '../pubsub-link.js';
import type { TransportLink } from '../transport-link.js';
import type { ResolvedClusterOptions } from './cluster-options.js';
import { keySlot, tagForSlots } from './key-slot.js';
import { describeSlots, slotsServedBy, splitAddress, type SlotMap } from './slot-map.js';
import { ClusterTopology, type ReadScope } from './topology.js';
import type { ClusterStats, ShardStats } from './cluster-stats.js';

/** One primary of the cluster in use: a PubSubLink (subscriber + publisher, heartbeats, probe) to it. */
interface Shard {
  address: string;
  link: PubSubLink;
}

/** Events a shard's link reports as they are (the shard's node added); `status` is the cluster's own. */
const FORWARDED = ['reconnecting', 'reconnected', 'resubscribed', 'heartbeat-timeout', 'probe-failed', 'suspect', 'resumed', 'cut-over', 'error'] as const;

/**
 * Redis Cluster: sharded pub/sub over connections of our own to each primary in use, driven by
 * the slot map (read from every node, see ClusterTopology), not by ioredis' Cluster class, whose
 * sharded subscribers go deaf after some failovers and migrations. Each shard is a PubSubLink, so
 * heartbeats, the path probe (a shard channel pinned to that shard's slots), make-before-break
 * and reconnect backoff hold per shard. Whenever a shard says a slot is served elsewhere (MOVED,
 * an unsolicited SUNSUBSCRIBE) or a shard is lost or suspect, the slot map is read again, and
 * again with backoff until every channel is acknowledged on the primary that serves its slot.
 * Patterns and `globalChannels` use classic (P)SUBSCRIBE, which Redis broadcasts cluster-wide:
 * they are held by one shard's subscriber.
 */
export class ClusterLink implements TransportLink {
  readonly counters: MessageCounters = { received: 0, invalid: 0, handlerErrors: 0, lost: 0, duplicates: 0, dropped: 0 };
  readonly events = new EventEmitter<RedisPubSubEvents>();
  readonly signals = new EventEmitter<LinkSignals>();
  readonly logger: Logger;
  private readonly cluster: ResolvedClusterOptions;
  private readonly topology: ClusterTopology;
  private readonly shards = new Map<string, Shard>();
  private readonly wanted = { shard: new Set<string>(), channel: new Set<string>(), pattern: new Set<string>() };
  /** The shard each shard channel is subscribed on now. */
  private readonly placed = new Map<string, string>();
  /** The shard whose subscriber holds the classic subscriptions. */
  private classicHost?: string;
  private map?: SlotMap;
  private state: RedisPubSubStatus = RedisPubSubStatus.CONNECTING;
  private stateChangedAt = Date.now();
  private everConnected = false;
  private started?: Promise<void>;
  private settleStart?: (error?: Error) => void;
  private periodic?: NodeJS.Timeout;
  /** The next read of the slot map while something is unsettled; undefined when none is due. */
  private retryTimer?: NodeJS.Timeout;
  private lastReadAt = 0;
  private nextRead?: NodeJS.Timeout;
  private nextReadScope?: ReadScope;
  /** Consecutive slot map reads that left something unsettled (drives the backoff). */
  private unsettledReads = 0;
  private readonly usable: Array<() => void> = [];
  /** Publishes waiting for a route (see waitForRoute). */
  private readonly wakeups = new Set<() => void>();
  /**
   * Channels something was to be published on while no primary served their slot: until one does,
   * the map is read again with backoff even when nothing else is unsettled (a client subscribed to
   * nothing there would otherwise only notice at the periodic check).
   */
  private readonly ownerless = new Set<string>();
  private readonly mapLog = new RetryLog();
  private readonly lostListeners: Array<{ channel: string; listener: (reason: string) => void }> = [];
  private readonly errorListeners: Array<(error: Error & { code?: unknown }, redact: (text: string) => string) => void> = [];

  constructor(
    readonly kind: 'server' | 'client',
    readonly options: ResolvedOptions,
    private readonly sink: MessageSink,
  ) {
    this.cluster = options.cluster!;
    this.logger = new Logger(`RedisPubSub:${options.name}`);
    this.topology = new ClusterTopology(
      this.cluster.nodes,
      this.cluster.redisOptions,
      this.cluster.slotsRefreshTimeout,
      `${options.name}:topology`,
      () => this.openPublishers(),
      this.cluster.natMap,
    );
  }

  get status(): RedisPubSubStatus {
    return this.state;
  }

  get splicing(): boolean {
    for (const shard of this.shards.values()) if (shard.link.splicing) return true;
    return false;
  }

  subscribe(kind: 'channel' | 'pattern', name: string): void {
    if (kind === 'pattern') this.wanted.pattern.add(name);
    else if (this.cluster.isGlobal(name)) this.wanted.channel.add(name);
    else this.wanted.shard.add(name);
    if (this.map) this.place(this.map);
  }

  start(): Promise<void> {
    if (this.state === RedisPubSubStatus.CLOSED) return Promise.reject(new Error(`${this.options.name}: closed`));
    this.started ??= new Promise<void>((resolve, reject) => {
      this.settleStart = (error) => (error ? reject(error) : resolve());
      this.events.emit('status', this.state);
      this.refresh('start');
      this.periodic = setInterval(() => this.refresh(undefined, 'open'), this.cluster.slotsRefreshInterval);
    });
    return this.started;
  }

  async closeSubscriber(): Promise<void> {
    this.setState(RedisPubSubStatus.CLOSED);
    this.settleStart?.(new Error(`${this.options.name}: closed before connecting`));
    clearInterval(this.periodic);
    clearTimeout(this.retryTimer);
    clearTimeout(this.nextRead);
    this.topology.close();
    await Promise.all([...this.shards.values()].map((shard) => shard.link.closeSubscriber()));
  }

  async close(): Promise<void> {
    await this.closeSubscriber();
    await Promise.all([...this.shards.values()].map((shard) => shard.link.close()));
  }

  on<E extends RedisPubSubEventName>(event: E, listener: (...args: RedisPubSubEvents[E]) => void): void {
    this.events.on(event, listener as never);
  }

  reportError(error: Error): void {
    if (this.events.listenerCount('error') > 0) this.events.emit('error', error);
  }

  /**
   * SPUBLISH on the primary that serves the channel's slot (PUBLISH for a global channel). A
   * redirect (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) means Redis did not execute it: the slot map is
   * read again and it is sent again, until `offlineQueue.timeoutMs`. A connection lost with it in
   * flight fails it (delivery unknown), never re-sent.
   */
  async publish(channel: string, message: string, hold = false): Promise<number> {
    const deadline = Date.now() + this.options.offlineQueue.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const shard = this.publishingShard(channel);
      if (shard?.link.publisher.isReady) {
        const redis = shard.link.publisher.redis;
        try {
          return await (this.cluster.isGlobal(channel) ? redis.publish(channel, message) : (redis.spublish(channel, message) as Promise<number>));
        } catch (error) {
          if (!isRedirect(errorText(error))) throw error;
          this.refresh(`SPUBLISH "${channel}" answered ${errorText(error)}`);
          if (hold) throw new RouteChanged(channel, errorText(error));
        }
      } else if (hold) throw new RouteChanged(channel, 'no primary of the cluster can take it now');
      const waitMs = Math.min(deadline - Date.now(), retryDelay(attempt, this.options.retry));
      if (waitMs <= 0) throw new Error(`event "${channel}" not sent: no primary of the cluster took it within ${this.options.offlineQueue.timeoutMs} ms`);
      await this.waitForRoute(waitMs);
      if (this.state === RedisPubSubStatus.CLOSED) throw new Error(`event "${channel}" not sent: closed`);
    }
  }

  /** Until the map changes or a publisher becomes usable (then at once), or `ms` passed. */
  private async waitForRoute(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let wake: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      wake = resolve;
      this.wakeups.add(resolve);
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.wakeups.delete(wake!);
  }

  private wakeUp(): void {
    for (const wake of [...this.wakeups]) wake();
    for (const listener of this.usable) listener();
  }

  canPublish(channel: string): boolean {
    return this.publishingShard(channel)?.link.publisher.isReady ?? false;
  }

  countsEveryReceiver(channel: string): boolean {
    return !this.cluster.isGlobal(channel);
  }

  onPublisherUsable(listener: () => void): void {
    this.usable.push(listener);
  }

  onSubscriberLost(channel: string, listener: (reason: string) => void): void {
    this.lostListeners.push({ channel, listener });
  }

  onConnectionError(listener: (error: Error & { code?: unknown }, redact: (text: string) => string) => void): void {
    this.errorListeners.push(listener);
  }

  unwrap(): Redis[] {
    const shards = [...this.shards.values()];
    return [...shards.map((shard) => shard.link.publisher.redis), ...shards.map((shard) => shard.link.subscriber.redis)];
  }

  stats(): RedisPubSubStats {
    // Each shard's own stats, read once: they list its missing subscriptions and its connections.
    const shards = [...this.shards.values()].map((shard) => ({ shard, stats: shard.link.stats() }));
    const missing: string[] = [];
    let confirmed = 0;
    for (const channel of this.wanted.shard) {
      const shard = this.shardOf(channel);
      if (shard?.link.registry.isConfirmed('shard', channel)) confirmed++;
      else missing.push(`shard:${channel} (${this.whereMissing(channel)})`);
    }
    const host = this.classicHost ? this.shards.get(this.classicHost) : undefined;
    for (const kind of ['channel', 'pattern'] as const) {
      for (const name of this.wanted[kind]) {
        if (host?.link.registry.isConfirmed(kind, name)) confirmed++;
        else missing.push(`${kind}:${name} (${host ? `on node ${host.address}` : 'no node chosen yet'})`);
      }
    }
    return {
      name: this.options.name,
      kind: this.kind,
      state: this.state,
      stateChangedAt: this.stateChangedAt,
      heartbeat: this.options.heartbeat,
      connections: { subscriber: this.worstConnection(shards, 'subscriber'), publisher: this.worstConnection(shards, 'publisher') },
      subscriptions: {
        expected: this.wanted.shard.size + this.wanted.channel.size + this.wanted.pattern.size,
        confirmed,
        missing: missing.slice(0, 20),
      },
      messages: { ...this.counters },
      ...(shards[0]?.stats.handover ? { handover: handoverTotals(shards.map(({ stats }) => stats.handover!)) } : {}),
      cluster: {
        shards: shards.map(({ shard, stats }) => this.shardStats(shard, stats)),
        connections: 2 * shards.length,
        refreshes: this.topology.refreshes,
        lastRefreshAt: this.topology.lastRefreshAt,
      },
    };
  }

  /**
   * Reads the slot map (now, or after the read in flight) and places everything by it. Reads start
   * at most once per `retry.minDelayMs`: a burst of redirects (every channel of a moved slot) is one read.
   */
  private refresh(reason?: string, scope: ReadScope = 'all'): void {
    if (this.state === RedisPubSubStatus.CLOSED) return;
    const waitMs = this.lastReadAt + this.options.retry.minDelayMs - Date.now();
    if (waitMs > 0) {
      this.nextReadScope = this.nextReadScope === 'all' || scope === 'all' ? 'all' : 'open';
      this.nextRead ??= setTimeout(() => {
        const nextScope = this.nextReadScope;
        this.nextRead = undefined;
        this.nextReadScope = undefined;
        this.refresh(reason, nextScope);
      }, waitMs);
      return;
    }
    this.lastReadAt = Date.now();
    if (reason) this.logger.debug(`reading the cluster's slot map: ${reason}`);
    void this.topology.refresh(scope).then((map) => {
      if (this.state === RedisPubSubStatus.CLOSED) return;
      if (map) this.place(map);
      else {
        const unlogged = this.mapLog.admit(this.unsettledReads + 1, 'no answer');
        const since = unlogged ? ` (${unlogged} more reads failed since the last report)` : '';
        if (unlogged !== null) this.logger.warn(`no node of the cluster answered CLUSTER NODES${since} (seeds: ${this.cluster.nodes.join(', ')})`);
      }
      this.refreshState();
    });
  }

  /** While anything is not acknowledged on the primary that serves it, the map is read again, with backoff. */
  private scheduleRetry(settled: boolean): void {
    if (settled) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.unsettledReads = 0;
      return;
    }
    if (this.retryTimer) return;
    const delay = retryDelay(++this.unsettledReads, this.options.retry);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.refresh('something is not acknowledged on the primary that serves it yet');
    }, delay);
  }

  private place(map: SlotMap): void {
    this.map = map;
    for (const channel of this.ownerless) if (map.owners[keySlot(channel)] !== undefined) this.ownerless.delete(channel);
    for (const shard of [...this.shards.values()]) {
      if (slotsServedBy(map, shard.address).size === 0) this.retire(shard, 'it serves no slot any more (failed over, or its slots moved)');
    }
    for (const channel of this.wanted.shard) {
      const owner = map.owners[keySlot(channel)];
      const current = this.placed.get(channel);
      if (owner === current) continue;
      // Make before break: the old primary keeps delivering what publishers with an older map send it
      // (a message goes to one node only, so never twice) until Redis itself unsubscribes it there.
      if (current) {
        this.shards.get(current)?.link.forget('shard', channel);
        this.placed.delete(channel);
      }
      // No primary claims the slot (a migration whose destination is not told yet): subscribing on the
      // old one would only be answered MOVED; the map is read again with backoff until one does.
      if (owner === undefined) continue;
      this.ensureShard(owner, map).link.subscribe('shard', channel);
      this.placed.set(channel, owner);
    }
    this.placeClassic(map);
    for (const shard of this.shards.values()) {
      const served = slotsServedBy(map, shard.address);
      const probe = shard.link.probeChannel;
      if (probe !== undefined && !served.has(keySlot(probe))) shard.link.moveProbe(probeChannel(served));
      shard.link.subscribeMissingNow();
    }
    this.wakeUp();
  }

  private placeClassic(map: SlotMap): void {
    if (this.wanted.channel.size + this.wanted.pattern.size === 0) return;
    // The host changes only when it was retired (it serves no slot any more).
    if (this.classicHost && this.shards.has(this.classicHost)) return;
    const next = [...this.shards.keys()].find((address) => slotsServedBy(map, address).size > 0) ?? map.owners.find((owner) => owner !== undefined);
    if (!next) return;
    for (const kind of ['channel', 'pattern'] as const) {
      for (const name of this.wanted[kind]) this.ensureShard(next, map).link.subscribe(kind, name);
    }
    this.classicHost = next;
  }

  private ensureShard(address: string, map: SlotMap): Shard {
    const existing = this.shards.get(address);
    if (existing) return existing;
    const [host, port] = splitAddress(address);
    const options: ResolvedOptions = { ...this.options, url: undefined, redis: { ...this.cluster.redisOptions, host, port } };
    delete options.cluster;
    const link = new PubSubLink(this.kind, options, this.sink, {
      probeChannel: probeChannel(slotsServedBy(map, address)),
      redirected: (reason) => this.refresh(`node ${address}: ${reason}`),
    });
    const shard: Shard = { address, link };
    this.shards.set(address, shard);
    this.watch(shard);
    link.start().catch(() => undefined);
    this.logger.log(`shard ${address} (slots ${describeSlots(slotsServedBy(map, address))}) in use`);
    return shard;
  }

  private watch(shard: Shard): void {
    const { link, address } = shard;
    for (const event of FORWARDED) {
      link.on(event, (...args: unknown[]) => {
        const [info] = args;
        if (event === 'error') return this.reportError(info as Error);
        (this.events.emit as (name: string, info: unknown) => boolean)(event, { ...(info as object), node: address });
      });
    }
    link.on('status', (state) => {
      // A shard lost or gone silent may have been failed over: the map says where its slots went.
      if (state === RedisPubSubStatus.RECONNECTING || state === RedisPubSubStatus.DISCONNECTED) this.refresh(`shard ${address} is ${state}`);
      this.refreshState();
    });
    link.on('suspect', () => this.refresh(`shard ${address} is suspect`));
    link.signals.on('delivering', (info) => this.signals.emit('delivering', info));
    link.signals.on('drained', () => this.signals.emit('drained'));
    link.onPublisherUsable(() => {
      this.wakeUp();
    });
    link.onSubscriberLost('', (reason) => {
      for (const { channel, listener } of this.lostListeners) if (this.shardOf(channel) === shard) listener(reason);
    });
    link.onConnectionError((error, redact) => {
      for (const listener of this.errorListeners) listener(error, redact);
    });
  }

  private retire(shard: Shard, why: string): void {
    this.shards.delete(shard.address);
    for (const [channel, address] of this.placed) if (address === shard.address) this.placed.delete(channel);
    if (this.classicHost === shard.address) this.classicHost = undefined;
    this.logger.log(`shard ${shard.address} closed: ${why}`);
    void shard.link.close();
  }

  private openPublishers(): Map<string, Redis> {
    const open = new Map<string, Redis>();
    for (const shard of this.shards.values()) if (shard.link.publisher.isReady) open.set(shard.address, shard.link.publisher.redis);
    return open;
  }

  /** The shard a publish to `channel` goes to (opened on first use). */
  private publishingShard(channel: string): Shard | undefined {
    const map = this.map;
    if (!map || this.state === RedisPubSubStatus.CLOSED) return undefined;
    if (this.cluster.isGlobal(channel)) {
      const address = this.classicHost ?? map.owners.find((owner) => owner !== undefined);
      return address ? this.ensureShard(address, map) : undefined;
    }
    const owner = map.owners[keySlot(channel)];
    if (owner) return this.ensureShard(owner, map);
    if (!this.ownerless.has(channel)) {
      this.ownerless.add(channel);
      this.scheduleRetry(false);
    }
    return undefined;
  }

  private shardOf(channel: string): Shard | undefined {
    const address = this.wanted.shard.has(channel) ? this.placed.get(channel) : this.classicHost;
    return address ? this.shards.get(address) : undefined;
  }

  private whereMissing(channel: string): string {
    const slot = keySlot(channel);
    const owner = this.map?.owners[slot];
    if (!owner) return `slot ${slot}: no primary serves it yet`;
    return `slot ${slot}, node ${owner} (slots ${describeSlots(slotsServedBy(this.map!, owner))})`;
  }

  private worstConnection(shards: Array<{ stats: RedisPubSubStats }>, role: ConnectionRole): ConnectionStats {
    const all = shards.map(({ stats }) => stats.connections[role]);
    const worst = all.find((connection) => connection.state !== 'connected') ?? all[0];
    return (
      worst ?? {
        role,
        state: 'connecting',
        lastLifeSignAt: null,
        heartbeatRttMs: null,
        reconnects: 0,
        attempt: 0,
        lastError: null,
        lastErrorAt: null,
        stateChangedAt: this.stateChangedAt,
      }
    );
  }

  private shardStats(shard: Shard, stats: RedisPubSubStats): ShardStats {
    const probe = shard.link.probeChannel;
    return {
      node: shard.address,
      slots: this.map ? describeSlots(slotsServedBy(this.map, shard.address)) : '',
      state: stats.state,
      connections: { subscriber: shardConnection(stats.connections.subscriber), publisher: shardConnection(stats.connections.publisher) },
      channels: [...this.placed.values()].filter((address) => address === shard.address).length,
      missing: stats.subscriptions.missing.filter((name) => name !== `shard:${probe}`),
    };
  }

  /** `connected` only when every channel is acknowledged on the primary that serves its slot now, and every shard in use is up. */
  private refreshState(): void {
    if (this.state === RedisPubSubStatus.CLOSED) return;
    const shards = [...this.shards.values()];
    let next: RedisPubSubStatus;
    if (shards.some((shard) => shard.link.status === RedisPubSubStatus.DISCONNECTED)) next = RedisPubSubStatus.DISCONNECTED;
    else if (this.map && shards.every((shard) => shard.link.status === RedisPubSubStatus.CONNECTED) && this.allPlaced()) {
      next = RedisPubSubStatus.CONNECTED;
    } else next = this.everConnected ? RedisPubSubStatus.RECONNECTING : RedisPubSubStatus.CONNECTING;
    if (next === RedisPubSubStatus.CONNECTED && !this.everConnected) {
      this.everConnected = true;
      this.settleStart?.();
    }
    this.scheduleRetry(next === RedisPubSubStatus.CONNECTED && this.ownerless.size === 0);
    this.setState(next);
  }

  private allPlaced(): boolean {
    const map = this.map!;
    for (const channel of this.wanted.shard) {
      const owner = map.owners[keySlot(channel)];
      if (owner === undefined || this.placed.get(channel) !== owner) return false;
    }
    if (this.wanted.channel.size + this.wanted.pattern.size > 0 && !this.classicHost) return false;
    return true;
  }

  private setState(state: RedisPubSubStatus): void {
    if (this.state === state) return;
    this.state = state;
    this.stateChangedAt = Date.now();
    this.events.emit('status', state);
  }
}

/** The shards' make-before-break counts added up; the first suspect one named. */
function handoverTotals(all: HandoverStats[]): HandoverStats {
  const total: HandoverStats = { suspect: null, cutOvers: 0, resumes: 0, spliced: 0, duplicatesDropped: 0, draining: 0 };
  for (const handover of all) {
    total.suspect ??= handover.suspect;
    total.cutOvers += handover.cutOvers;
    total.resumes += handover.resumes;
    total.spliced += handover.spliced;
    total.duplicatesDropped += handover.duplicatesDropped;
    total.draining += handover.draining;
  }
  return total;
}

function shardConnection({ state, reconnects, heartbeatRttMs }: ConnectionStats): ShardStats['connections'][ConnectionRole] {
  return { state, reconnects, heartbeatRttMs };
}

/** A publish Redis did not run because its channel's slot is served elsewhere (or nowhere yet): hold it and send it again. */
export class RouteChanged extends Error {
  constructor(channel: string, why: string) {
    super(`event "${channel}" not sent yet: ${why}`);
  }
}

/** A probe channel of our own in one of `slots`, so the probe crosses this shard. */
function probeChannel(slots: ReadonlySet<number>): string {
  return `${INTERNAL_CHANNEL_PREFIX}:probe:${randomUUID()}:${tagForSlots(slots)}`;
}
