import { randomUUID } from 'node:crypto';
import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import { InvalidMessageException } from '@nestjs/microservices/errors/invalid-message.exception.js';
import { connectable, defer, Observable, Subject, throwError } from 'rxjs';
import type { Redis } from 'ioredis';
import type { Context } from '@opentelemetry/api';
import { MessageCodec } from './codec.js';
import { DurablePublisher } from './delivery/durable-stream.js';
import { PositionStamper, stampEnvelope } from './delivery/position.js';
import { publishConfirmed } from './delivery/publish-confirm.js';
import { errorText } from './error-text.js';
import { REPLY_CHANNEL_PREFIX, RedisPubSubStatus } from './constants.js';
import { OfflineQueue, type SendEvent } from './offline-queue.js';
import { RouteChanged } from './cluster/cluster-link.js';
import { resolveOptions, type RedisPubSubOptions, type ResolvedOptions } from './options.js';
import { PubSubLink, type RedisPubSubEventCallbacks, type RedisPubSubEventName, type RedisPubSubStats } from './pubsub-link.js';
import { decodeReply, nestReplyChannel, replyIdOf } from './reply-packet.js';
import { ReplySubscriptions } from './reply-subscriptions.js';
import { replyDestination, TransportTelemetry } from './telemetry/transport-telemetry.js';
import { transportRegistry, type MonitoredTransport } from './transport-registry.js';
import { createLink } from './create-link.js';
import type { TransportLink } from './transport-link.js';

interface PendingRequest {
  channel: string;
  callback: (packet: WritePacket) => void;
  timer: NodeJS.Timeout;
  /** Set while the request waits for the transport to (re)connect before publishing. */
  whenConnected?: () => void;
  published: boolean;
  /** Holds its "<channel>.reply" subscription (released when the request ends). */
  listening?: boolean;
  /** The request's send span: its reply is processed in the same trace. */
  trace?: Context;
}

/**
 * Nest client proxy over Redis pub/sub. `emit()` publishes, or holds the event in a
 * bounded offline queue while the publisher is down. `send()` publishes a request
 * carrying this instance's own reply channel (and listens on Nest's "<channel>.reply"
 * too) and always settles: reply, error, rejected reply, timeout, "no subscriber",
 * or "connection lost".
 */
export class RedisPubSubClient
  // Status is Nest's default `string` on purpose: ClientsModule's `customClass` is
  // Type<ClientProxy<..., string>> and the base class's `_status$` subject is invariant, so a
  // narrower type here fails `customClass: RedisPubSubClient` under strictFunctionTypes.
  // `status` below keeps the precise type.
  extends ClientProxy<RedisPubSubEventCallbacks, string>
  implements MonitoredTransport
{
  readonly name: string;
  private readonly settings: ResolvedOptions;
  private readonly link: TransportLink;
  private readonly codec: MessageCodec;
  private readonly replyChannel: string;
  /** Nest's `<channel>.reply` channels; not on a cluster (see the README). */
  private readonly replies?: ReplySubscriptions;
  private readonly customDeserializer: boolean;
  private readonly pending = new Map<string, PendingRequest>();
  private readonly offline: OfflineQueue;
  /** Channels whose last event reached a subscriber. */
  private readonly heard = new Set<string>();
  private readonly positions = new PositionStamper();
  private readonly durable: DurablePublisher;
  private started = false;
  private closed = false;
  private closing?: Promise<void>;
  /** Set at start when OpenTelemetry is installed and a provider registered; the hot path checks only this. */
  private telemetry?: TransportTelemetry;

  constructor(options: RedisPubSubOptions = {}) {
    super();
    this.settings = resolveOptions(options, 'redis-pubsub-client');
    this.name = this.settings.name;
    this.initializeSerializer(options);
    this.initializeDeserializer(options);
    this.customDeserializer = options.deserializer !== undefined;
    this.codec = new MessageCodec(this.settings.maxPayloadBytes, this.settings.maxDepth);
    this.replyChannel = `${REPLY_CHANNEL_PREFIX}${randomUUID()}`;
    const link = createLink('client', this.settings, (channel, payload) => this.onReply(channel, payload));
    this.link = link;
    this.link.subscribe('channel', this.replyChannel);
    if (link instanceof PubSubLink) this.replies = new ReplySubscriptions(link);
    this.offline = new OfflineQueue(this.settings.offlineQueue, this.settings.retry, this.link);
    this.durable = new DurablePublisher(this.settings.durable);
    this.link.on('status', (state) => {
      this._status$.next(state);
      if (state === RedisPubSubStatus.CONNECTED) this.releaseWaiting();
    });
    // A reply published while the subscriber is down is lost: fail now rather than at the timeout.
    this.link.onSubscriberLost(this.replyChannel, (reason) => this.failAll(`the reply connection to Redis was lost (${reason})`, true));
    // As with Nest's ClientRedis, a request made before Redis was ever reached fails at the first
    // connection error, with its code (e.g. ECONNREFUSED), rather than at its timeout. Once connected,
    // requests wait out a reconnect within their timeout.
    this.link.onConnectionError((error, redact) => {
      if (this.link.status !== RedisPubSubStatus.CONNECTING) return;
      const code = typeof error.code === 'string' ? error.code : undefined;
      for (const [id, request] of this.pending) {
        if (request.whenConnected) this.fail(id, `request to "${request.channel}" failed: Redis could not be reached (${redact(error.message)})`, code);
      }
    });
  }

  override get status(): Observable<RedisPubSubStatus> {
    return super.status as Observable<RedisPubSubStatus>; // only RedisPubSubStatus values are emitted
  }

  /** Starts both connections and resolves once they are up and the reply channel is subscribed. */
  async connect(): Promise<void> {
    if (this.closed) throw new Error(`${this.name}: connect() after close()`);
    this.ensureStarted();
    await this.link.start();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.failAll('the client was closed');
      this.offline.close('the client was closed');
      await this.link.close();
      transportRegistry.markClosed(this);
    })();
    return this.closing;
  }

  override emit<TResult = any, TInput = any>(pattern: any, data: TInput): Observable<TResult> {
    if (pattern == null || data == null) return throwError(() => new InvalidMessageException());
    this.ensureStarted();
    const packet = this.createPacket(pattern, data);
    // Hot, like Nest's own emit: the event is sent whether or not anyone subscribes.
    const source = connectable(defer(() => this.dispatchEvent<TResult>(packet)), {
      connector: () => new Subject<TResult>(),
      resetOnDisconnect: false,
    });
    source.connect();
    return source;
  }

  override send<TResult = any, TInput = any>(pattern: any, data: TInput): Observable<TResult> {
    if (pattern == null || data == null) return throwError(() => new InvalidMessageException());
    this.ensureStarted();
    return new Observable<TResult>((observer) => this.publish(this.createPacket(pattern, data), this.createObserver(observer)));
  }

  override on<E extends RedisPubSubEventName = RedisPubSubEventName, C extends RedisPubSubEventCallbacks[E] = RedisPubSubEventCallbacks[E]>(
    event: E,
    callback: C,
  ): void {
    this.link.on(event, callback);
  }

  /** `[publisher, subscriber]` ioredis instances. */
  unwrap<T = [Redis, Redis]>(): T {
    return this.link.unwrap() as T;
  }

  getStats(): RedisPubSubStats {
    return { ...this.link.stats(), pending: { requests: this.pending.size, events: this.offline.size } };
  }

  /** Resolves to the number of subscribers Redis delivered the event to (per node on a cluster). */
  protected async dispatchEvent<T = any>(packet: ReadPacket): Promise<T> {
    if (!this.telemetry) return this.publishEvent<T>(packet);
    const operation = this.telemetry.beginSend({ name: this.normalizePattern(packet.pattern) }, packet.metadata);
    try {
      const result = await this.publishEvent<T>({ ...packet, metadata: operation.metadata });
      operation.end(undefined);
      return result;
    } catch (error) {
      operation.end(undefined, error);
      throw error;
    }
  }

  private async publishEvent<T>(packet: ReadPacket): Promise<T> {
    if (this.closed) throw new Error(`${this.name}: emit() after close()`);
    const channel = this.normalizePattern(packet.pattern);
    const durable = this.durable.has(channel);
    const envelope: unknown = await this.serializer.serialize({ ...packet, pattern: channel });
    // Stamped after the (possibly async) serializer, right before publishing: sequence order is wire order.
    const stamped = stampEnvelope(envelope, () => (durable ? this.durable.placeholder(this.positions.next(channel)) : this.positions.next(channel)));
    const message = JSON.stringify(envelope);
    let send: SendEvent;
    if (durable) {
      const frame = stamped ? this.durable.frame(message) : undefined;
      if (!frame) throw new Error(`${this.name}: durable event "${channel}" not sent: the serializer must return an envelope object`);
      send = () => this.durable.publish(this.link.unwrap()[0]!, channel, frame);
    } else send = () => this.link.publish(channel, message);
    // Held events of a channel that had subscribers wait for one to be back (see OfflineQueue); not a
    // durable one (its subscribers recover it from the stream, and a second script call would append it
    // twice), nor one whose receiver count is not the whole picture (a global channel on a cluster).
    const hold = () => this.offline.enqueue(channel, send, !durable && this.heard.has(channel) && this.link.countsEveryReceiver(channel));
    // On a cluster, an event whose slot just moved is held too (Redis answers in order: so are they).
    const direct =
      durable || !this.settings.cluster
        ? send
        : () => this.link.publish(channel, message, true).catch((error: unknown) => (error instanceof RouteChanged ? hold() : Promise.reject(error)));
    const publish = () => (this.link.canPublish(channel) && !this.offline.holds(channel) ? direct() : hold());
    const receivers = await publishConfirmed(publish, this.settings.requireReceiver, () => `${this.name}: event "${channel}"`);
    if (receivers > 0 !== this.heard.has(channel)) {
      if (receivers > 0) this.heard.add(channel);
      else this.heard.delete(channel);
    }
    return receivers as T;
  }

  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    const id = randomUUID();
    const channel = this.normalizePattern(packet.pattern);
    const timeoutMs = this.settings.requestTimeoutMs;
    if (this.closed) {
      callback({ err: new Error(`${this.name}: send() after close()`), isDisposed: true });
      return () => undefined;
    }
    const request: PendingRequest = {
      channel,
      callback,
      published: false,
      timer: setTimeout(() => this.fail(id, `request to "${channel}" timed out after ${timeoutMs} ms`), timeoutMs),
    };
    this.pending.set(id, request);
    void this.sendRequest(id, request, { ...packet, pattern: channel, id, replyTo: this.replyChannel }).catch((error: unknown) =>
      this.fail(id, `request to "${channel}" could not be published: ${errorText(error)}`),
    );
    return () => this.forget(id);
  }

  private async sendRequest(id: string, request: PendingRequest, packet: ReadPacket & { id: string; replyTo: string }): Promise<void> {
    if (this.link.status !== RedisPubSubStatus.CONNECTED) {
      await new Promise<void>((resolve) => (request.whenConnected = resolve));
      request.whenConnected = undefined;
    }
    if (!this.pending.has(id)) return;
    // Nest-protocol responders (Transport.REDIS servers) answer on "<channel>.reply": listen there first.
    request.listening = true;
    const listening = this.replies ? this.replies.acquire(request.channel) : true;
    if (listening !== true && !(await listening)) throw new Error('the reply connection to Redis was lost');
    if (!this.pending.has(id)) return;
    const operation = this.telemetry?.beginSend({ name: request.channel }, packet.metadata, id);
    request.trace = operation?.context;
    let receivers: number;
    try {
      const message = JSON.stringify(await this.serializer.serialize(operation ? { ...packet, metadata: operation.metadata } : packet));
      if (!this.pending.has(id)) return operation?.end(undefined, 'request cancelled');
      // The reply path may have died while an async serializer ran: fail now, not at the timeout.
      if (this.link.status !== RedisPubSubStatus.CONNECTED) throw new Error('the reply connection to Redis was lost');
      request.published = true;
      receivers = await this.link.publish(request.channel, message);
      operation?.end(Buffer.byteLength(message));
    } catch (error) {
      operation?.end(undefined, error);
      throw error;
    }
    if (receivers === 0) this.fail(id, `no subscriber for pattern "${request.channel}": nobody is subscribed to it`);
  }

  /** Replies arrive on this instance's own reply channel, or on "<channel>.reply" from Nest-protocol responders. */
  private onReply(channel: string, payload: Buffer): void {
    if (channel !== this.replyChannel && !this.replies?.has(channel)) return;
    this.link.counters.received++;
    const decoded = decodeReply(this.codec, payload, this.customDeserializer, this.settings.maxPayloadBytes);
    if (!decoded.ok) return this.rejectReply(channel, payload, decoded.problem);
    const value = decoded.value as { id?: unknown } | null;
    // Without a custom deserializer the id is readable now: skip replies to requests that are gone or not ours.
    if (!this.customDeserializer && typeof value?.id === 'string' && !this.pending.has(value.id)) return;
    // A deserializer that throws synchronously must reject here, not inside ioredis' event emission.
    new Promise<WritePacket & { id?: unknown }>((resolve) => resolve(this.deserializer.deserialize(decoded.value))).then(
      (packet) => this.settleReply(channel, payload, packet),
      (error: unknown) => this.rejectReply(channel, payload, `deserializer failed: ${errorText(error)}`),
    );
  }

  private settleReply(channel: string, payload: Buffer, packet: (WritePacket & { id?: unknown }) | undefined): void {
    const id = packet?.id;
    if (typeof id !== 'string') return this.rejectReply(channel, payload, 'no string "id"');
    const request = this.pending.get(id);
    // Gone (timed out, cancelled), or a reply to someone else's request on a shared "<channel>.reply".
    if (!request || !this.answers(channel, request)) return;
    const { err, response, isDisposed } = packet!;
    const last = isDisposed === true || err != null;
    if (last) this.forget(id);
    const deliver = () => request.callback(last ? { err, response, isDisposed: true } : { err, response });
    if (!this.telemetry) return deliver();
    const operation = this.telemetry.beginProcess(replyDestination(channel), undefined, payload.length, id, request.trace);
    operation.run(deliver);
    operation.end();
  }

  /** Logged and counted; the request it answers, when its id can be read, fails now with the reason. */
  private rejectReply(channel: string, payload: Buffer, problem: string): void {
    this.link.counters.invalid++;
    this.link.logger.error(`Invalid reply on channel "${channel}": ${problem}`);
    const id = replyIdOf(payload);
    const request = id === undefined ? undefined : this.pending.get(id);
    if (request && this.answers(channel, request)) this.fail(id!, `request to "${request.channel}" failed: reply rejected: ${problem}`);
  }

  private answers(channel: string, request: PendingRequest): boolean {
    return channel === this.replyChannel || channel === nestReplyChannel(request.channel);
  }

  private ensureStarted(): void {
    if (this.started || this.closed) return;
    this.started = true;
    transportRegistry.add(this);
    this.telemetry = TransportTelemetry.start(this.link, { name: this.name, kind: 'client', stats: () => this.getStats() });
    // Closing before the first connection is the caller's own doing, not an error to log.
    this.link.start().catch((error: Error) => this.closed || this.link.logger.error(error.message));
  }

  private releaseWaiting(): void {
    for (const request of this.pending.values()) request.whenConnected?.();
  }

  /** `code`: the cause's error code (e.g. ECONNREFUSED), for callers that branch on it as with Nest's clients. */
  private fail(id: string, message: string, code?: string): void {
    const request = this.pending.get(id);
    if (!request) return;
    this.forget(id);
    const err = new Error(`${this.name}: ${message}`);
    request.callback({ err: code === undefined ? err : Object.assign(err, { code }), isDisposed: true });
  }

  private failAll(reason: string, publishedOnly = false): void {
    for (const [id, request] of this.pending) {
      if (!publishedOnly || request.published) this.fail(id, `request to "${request.channel}" failed: ${reason}`);
    }
  }

  private forget(id: string): void {
    const request = this.pending.get(id);
    if (!request) return;
    clearTimeout(request.timer);
    this.pending.delete(id);
    if (request.listening) this.replies?.release(request.channel);
    request.whenConnected?.();
  }
}
