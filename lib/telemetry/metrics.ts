import type { Attributes, BatchObservableResult, Counter, Histogram, Meter, Observable } from '@opentelemetry/api';
import type { ConnectionRole, ConnectionState } from '../managed-connection.js';
import type { RedisPubSubStatus } from '../constants.js';
import type { RedisPubSubStats } from '../pubsub-link.js';
import { splitAddress } from '../cluster/slot-map.js';
import { ATTR, destinationLabel, errorType, metricAttributes, MESSAGING_SYSTEM, type Destination, type OperationName } from './semconv.js';

/** The semantic conventions' advised buckets for messaging durations, in seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
const STATES: RedisPubSubStatus[] = ['connecting', 'connected', 'reconnecting', 'disconnected', 'closed'];
const CONNECTION_STATES: ConnectionState[] = ['connecting', 'connected', 'suspect', 'reconnecting', 'disconnected', 'closed'];
const ROLES: ConnectionRole[] = ['subscriber', 'publisher'];
/**
 * Clients publish to any channel: attribute sets per transport and operation are bounded; messages
 * to further destinations are counted and measured under one `otel.metric.overflow` set (as the
 * SDK does past its own cardinality limit, 2,000 per instrument by default: this bound stays below).
 */
const MAX_ATTRIBUTE_SETS = 1_000;

/** What the observable instruments read from one running transport. */
export interface MetricSources {
  name: string;
  kind: 'server' | 'client';
  stats(): RedisPubSubStats;
  /** Servers: handlers still running. */
  inFlight?(): number;
}

/**
 * One set of instruments per meter, shared by every transport of the process, and one collection
 * callback observing them all. A closed transport stays observed (state `closed`) until one of the
 * same kind and name replaces it, as in health checks: dropping it would leave its last values
 * (e.g. `connected`) standing in cumulative exports.
 */
class Instruments {
  private readonly transports = new Map<MetricSources, Attributes>();
  /** Per transport name and kind: its messages, counted per attribute set. */
  private readonly tallies = new Map<string, { send: Tallies; process: Tallies }>();
  readonly sent: Observable;
  readonly consumed: Observable;
  readonly processDuration: Histogram;
  readonly operationDuration: Histogram;
  readonly resubscribeDuration: Histogram;
  readonly suspectDuration: Histogram;
  readonly suspects: Counter;
  readonly heartbeatTimeouts: Counter;
  readonly probeFailures: Counter;
  readonly state: Observable;
  readonly connectionState: Observable;
  readonly reconnects: Observable;
  readonly heartbeatRtt: Observable;
  readonly subscriptionsExpected: Observable;
  readonly subscriptionsConfirmed: Observable;
  readonly invalid: Observable;
  readonly handlerErrors: Observable;
  readonly lost: Observable;
  readonly duplicates: Observable;
  readonly inFlight: Observable;
  readonly offlineQueue: Observable;
  readonly pendingRequests: Observable;

  constructor(readonly meter: Meter) {
    const duration = (name: string, description: string) =>
      meter.createHistogram(name, { unit: 's', description, advice: { explicitBucketBoundaries: DURATION_BUCKETS } });
    // Message counts are kept per attribute set here and observed at collection: one SDK recording
    // (the duration) per message instead of two, since each recording hashes its attributes.
    this.sent = meter.createObservableCounter('messaging.client.sent.messages', { unit: '{message}', description: 'Messages the transport attempted to publish (events, requests, replies).' });
    this.consumed = meter.createObservableCounter('messaging.client.consumed.messages', { unit: '{message}', description: 'Messages delivered to a handler (server) or reply messages matched to a request (client).' });
    this.processDuration = duration('messaging.process.duration', 'Duration of handling one message, to the end of the handler.');
    this.operationDuration = duration('messaging.client.operation.duration', 'Duration of one PUBLISH, until Redis acknowledged it.');
    this.resubscribeDuration = duration('redis_pubsub.resubscribe.duration', 'Time from a new subscriber connection to every subscription acknowledged.');
    this.suspectDuration = duration('redis_pubsub.suspect.duration', 'How long a suspect connection stayed suspect, until it showed life again (resumed) or its replacement took over (cut-over).');
    this.suspects = meter.createCounter('redis_pubsub.connection.suspects', { unit: '{suspicion}', description: 'Connections suspected (silent, or failing the path probe): kept open while a replacement is prepared beside them.' });
    this.heartbeatTimeouts = meter.createCounter('redis_pubsub.heartbeat.timeouts', { unit: '{timeout}', description: 'Connections silent for heartbeat.timeoutMs after a PING (then suspected).' });
    this.probeFailures = meter.createCounter('redis_pubsub.probe.failures', { unit: '{failure}', description: 'Path probes that did not reach the subscriber (deaf subscriber caught).' });
    this.state = meter.createObservableGauge('redis_pubsub.state', { unit: '1', description: '1 for the current state of the transport, 0 for the others.' });
    this.connectionState = meter.createObservableGauge('redis_pubsub.connection.state', { unit: '1', description: '1 for the current state of each connection, 0 for the others.' });
    this.reconnects = meter.createObservableCounter('redis_pubsub.connection.reconnects', { unit: '{reconnect}', description: 'Successful reconnects per connection.' });
    this.heartbeatRtt = meter.createObservableGauge('redis_pubsub.heartbeat.rtt', { unit: 's', description: 'Round trip of the last answered heartbeat PING per connection.' });
    this.subscriptionsExpected = meter.createObservableGauge('redis_pubsub.subscriptions.expected', { unit: '{subscription}', description: 'Channels and patterns the transport must be subscribed to (including its probe channel).' });
    this.subscriptionsConfirmed = meter.createObservableGauge('redis_pubsub.subscriptions.confirmed', { unit: '{subscription}', description: 'Subscriptions Redis acknowledged on the current subscriber connection.' });
    this.invalid = meter.createObservableCounter('redis_pubsub.messages.invalid', { unit: '{message}', description: 'Messages rejected as invalid (size, UTF-8, depth, forbidden keys, envelope shape).' });
    this.handlerErrors = meter.createObservableCounter('redis_pubsub.handler.errors', { unit: '{error}', description: 'Handlers that threw or rejected.' });
    this.lost = meter.createObservableCounter('redis_pubsub.messages.lost', { unit: '{message}', description: "Server: events of this library's clients that never arrived (gaps in their publisher's sequence)." });
    this.duplicates = meter.createObservableCounter('redis_pubsub.messages.duplicates', { unit: '{message}', description: 'Server: repeated or out-of-date events dropped before their handler.' });
    this.inFlight = meter.createObservableUpDownCounter('redis_pubsub.handlers.in_flight', { unit: '{message}', description: 'Server: messages whose handler has not finished.' });
    this.offlineQueue = meter.createObservableUpDownCounter('redis_pubsub.offline_queue.depth', { unit: '{message}', description: 'Client: events held while the publisher is down.' });
    this.pendingRequests = meter.createObservableUpDownCounter('redis_pubsub.requests.pending', { unit: '{request}', description: 'Client: requests awaiting their reply.' });
    const observables: Observable[] = [
      this.sent, this.consumed, this.state, this.connectionState, this.reconnects, this.heartbeatRtt, this.subscriptionsExpected, this.subscriptionsConfirmed,
      this.invalid, this.handlerErrors, this.lost, this.duplicates, this.inFlight, this.offlineQueue, this.pendingRequests,
    ];
    meter.addBatchObservableCallback((result) => {
      const snapshots = [...this.transports].map(([sources, attributes]) => ({ sources, attributes, stats: sources.stats() }));
      const running = new Set(snapshots.filter((s) => s.stats.state !== 'closed').map((s) => `${s.sources.kind}\u0000${s.sources.name}`));
      for (const { sources, attributes, stats } of snapshots) {
        // A closed transport speaks for its name only while no running one of the same name does.
        if (stats.state === 'closed' && running.has(`${sources.kind}\u0000${sources.name}`)) continue;
        this.observe(result, sources, attributes, stats);
      }
      for (const { send, process } of this.tallies.values()) {
        for (const tally of send.all()) result.observe(this.sent, tally.count, tally.attributes);
        for (const tally of process.all()) result.observe(this.consumed, tally.count, tally.attributes);
      }
    }, observables);
  }

  /** Shared by transports of the same kind and name, so a replacement continues its predecessor's counts. */
  talliesOf(sources: MetricSources, instance: Attributes): { send: Tallies; process: Tallies } {
    const key = `${sources.kind}\u0000${sources.name}`;
    let tallies = this.tallies.get(key);
    if (!tallies) this.tallies.set(key, (tallies = { send: new Tallies(instance, 'send'), process: new Tallies(instance, 'process') }));
    return tallies;
  }

  /** Replaces closed transports of the same kind and name; running ones are all observed. */
  add(sources: MetricSources, attributes: Attributes): void {
    for (const other of this.transports.keys()) {
      if (other.kind === sources.kind && other.name === sources.name && other.stats().state === 'closed') this.transports.delete(other);
    }
    this.transports.set(sources, attributes);
  }

  private observe(result: BatchObservableResult, sources: MetricSources, instance: Attributes, stats: RedisPubSubStats): void {
    for (const state of STATES) result.observe(this.state, stats.state === state ? 1 : 0, { ...instance, [ATTR.state]: state });
    // On a cluster each shard's connections are observed, named by their primary (server.address, server.port).
    const connections = stats.cluster
      ? stats.cluster.shards.flatMap((shard) => ROLES.map((role) => ({ role, connection: shard.connections[role], node: nodeAttributes(shard.node) })))
      : ROLES.map((role) => ({ role, connection: stats.connections[role], node: {} }));
    for (const { role, connection, node } of connections) {
      const attributes = { ...instance, [ATTR.connection]: role, ...node };
      for (const state of CONNECTION_STATES) result.observe(this.connectionState, connection.state === state ? 1 : 0, { ...attributes, [ATTR.state]: state });
      result.observe(this.reconnects, connection.reconnects, attributes);
      if (connection.heartbeatRttMs !== null) result.observe(this.heartbeatRtt, connection.heartbeatRttMs / 1000, attributes);
    }
    result.observe(this.subscriptionsExpected, stats.subscriptions.expected, instance);
    result.observe(this.subscriptionsConfirmed, stats.subscriptions.confirmed, instance);
    result.observe(this.invalid, stats.messages.invalid, instance);
    result.observe(this.handlerErrors, stats.messages.handlerErrors, instance);
    result.observe(this.lost, stats.messages.lost, instance);
    result.observe(this.duplicates, stats.messages.duplicates, instance);
    if (sources.inFlight) result.observe(this.inFlight, sources.inFlight(), instance);
    if (stats.pending) {
      result.observe(this.offlineQueue, stats.pending.events, instance);
      result.observe(this.pendingRequests, stats.pending.requests, instance);
    }
  }
}

/** Messages of one attribute set: counted here, observed at collection. */
interface Tally {
  readonly attributes: Attributes;
  count: number;
}

/**
 * The attribute sets of one transport and operation, each created once, so that the per-message
 * path looks up a channel and touches no new object.
 */
class Tallies {
  private readonly named = new Map<string, Tally>();
  private readonly templated = new Map<string, Tally>();
  private readonly failed = new Map<string, Tally>();
  private overflow?: Tally;

  constructor(
    private readonly instance: Attributes,
    private readonly operation: OperationName,
  ) {}

  of(destination: Destination, error: unknown, failed: boolean): Tally {
    if (failed) {
      const type = errorType(error);
      const key = `${destination.template === undefined ? 'n' : 't'}${destinationLabel(destination)}\u0000${type}`;
      return this.failed.get(key) ?? this.add(this.failed, key, { ...metricAttributes(destination, this.operation), [ATTR.errorType]: type });
    }
    const map = destination.template === undefined ? this.named : this.templated;
    const key = destinationLabel(destination);
    return map.get(key) ?? this.add(map, key, metricAttributes(destination, this.operation));
  }

  *all(): Iterable<Tally> {
    yield* this.named.values();
    yield* this.templated.values();
    yield* this.failed.values();
    if (this.overflow) yield this.overflow;
  }

  private add(map: Map<string, Tally>, key: string, attributes: Attributes): Tally {
    if (this.named.size + this.templated.size + this.failed.size >= MAX_ATTRIBUTE_SETS) {
      this.overflow ??= {
        attributes: { [ATTR.system]: MESSAGING_SYSTEM, [ATTR.operationName]: this.operation, 'otel.metric.overflow': true, ...this.instance },
        count: 0,
      };
      return this.overflow;
    }
    const tally: Tally = { attributes: { ...attributes, ...this.instance }, count: 0 };
    map.set(key, tally);
    return tally;
  }
}

let shared: Instruments | undefined;

/**
 * Metrics through the OpenTelemetry metrics API: the messaging conventions' four, counted and
 * recorded per message, and what only this transport knows, observed from its stats at collection
 * time (nothing on the hot path) or recorded from its lifecycle events.
 */
export class MessagingMetrics {
  private readonly instruments: Instruments;
  private readonly instance: Attributes;
  private readonly sends: Tallies;
  private readonly processes: Tallies;

  constructor(meter: Meter, sources: MetricSources) {
    if (shared?.meter !== meter) shared = new Instruments(meter);
    this.instruments = shared;
    this.instance = { [ATTR.instance]: sources.name, [ATTR.kind]: sources.kind };
    shared.add(sources, this.instance);
    ({ send: this.sends, process: this.processes } = shared.talliesOf(sources, this.instance));
  }

  sent(destination: Destination, durationMs: number, error?: unknown): void {
    const tally = this.sends.of(destination, error, error !== undefined);
    tally.count++;
    this.instruments.operationDuration.record(durationMs / 1000, tally.attributes);
  }

  processed(destination: Destination, durationMs: number, error?: unknown, failed = error !== undefined): void {
    const tally = this.processes.of(destination, error, failed);
    tally.count++;
    this.instruments.processDuration.record(durationMs / 1000, tally.attributes);
  }

  resubscribed(durationMs: number, failed: number): void {
    this.instruments.resubscribeDuration.record(durationMs / 1000, failed > 0 ? { ...this.instance, [ATTR.errorType]: 'refused' } : this.instance);
  }

  suspected(connection: ConnectionRole): void {
    this.instruments.suspects.add(1, { ...this.instance, [ATTR.connection]: connection });
  }

  /** A suspect connection's end: it showed life again, or its replacement took over. */
  handedOver(connection: ConnectionRole, outcome: 'resumed' | 'cut-over', suspectForMs: number): void {
    this.instruments.suspectDuration.record(suspectForMs / 1000, { ...this.instance, [ATTR.connection]: connection, [ATTR.outcome]: outcome });
  }

  heartbeatTimeout(connection: ConnectionRole): void {
    this.instruments.heartbeatTimeouts.add(1, { ...this.instance, [ATTR.connection]: connection });
  }

  probeFailed(): void {
    this.instruments.probeFailures.add(1, this.instance);
  }
}

function nodeAttributes(address: string): Attributes {
  const [host, port] = splitAddress(address);
  return { [ATTR.serverAddress]: host, [ATTR.serverPort]: port };
}
