import { Server, type BaseRpcContext, type CustomTransportStrategy, type MessageHandler, type Transport, type WritePacket } from '@nestjs/microservices';
import { isObservable, throwError, type Observable } from 'rxjs';
import type { Redis } from 'ioredis';
import type { Context } from '@opentelemetry/api';
import { DeliveryGuard } from './delivery/delivery-guard.js';
import { BatchDispatcher, batchSettings, type BatchHost, type RedisPubSubBatchExtras } from './batch-dispatcher.js';
import { errorText } from './error-text.js';
import { MessageCodec, validatePacket, type IncomingPacket } from './codec.js';
import { REDIS_PUBSUB_TRANSPORT, type RedisPubSubStatus } from './constants.js';
import { RedisPubSubContext } from './context.js';
import { resolveOptions, type RedisPubSubOptions, type ResolvedOptions } from './options.js';
import { type RedisPubSubEventCallbacks, type RedisPubSubEventName, type RedisPubSubStats } from './pubsub-link.js';
import { isReplyPacket, nestReplyChannel } from './reply-packet.js';
import { RequestStreams, STREAM_ENDED_BY_CLOSE } from './request-streams.js';
import { replyDestination, TransportTelemetry, type ProcessOperation } from './telemetry/transport-telemetry.js';
import { transportRegistry, type MonitoredTransport } from './transport-registry.js';
import { within } from './within.js';
import { createLink } from './create-link.js';
import type { TransportLink } from './transport-link.js';

const NO_MESSAGE_HANDLER = 'There is no matching message handler defined in the remote service.';

interface Route {
  handler: MessageHandler;
  isEvent: boolean;
  /** Completion callbacks for events on this route's channel, bound once: the event hot path allocates none. */
  completion: EventCompletion;
  /** Set for `batch: true` handlers: their events are queued there instead of run one by one. */
  batch?: BatchDispatcher;
}

interface EventCompletion {
  finish: (error?: unknown, failed?: boolean) => void;
  fail: (error: unknown) => void;
  consume: (value: unknown) => void;
}

/** Extras of `@EventPattern`: `{ psubscribe: true }` asks for a PSUBSCRIBE glob instead of a channel; `batch: true` for arrays. */
export interface RedisPubSubHandlerExtras extends RedisPubSubBatchExtras {
  psubscribe?: boolean;
  /**
   * Recover this channel's missed events from its stream after reconnects and gaps. Its publishers
   * must list the channel in their `durable` option (they append to the stream).
   */
  durable?: boolean;
}

/**
 * Nest custom transport strategy over Redis pub/sub: one subscriber and one publisher
 * connection, managed heartbeats, verified resubscription after every reconnect.
 */
export class RedisPubSubServer
  extends Server<RedisPubSubEventCallbacks, RedisPubSubStatus>
  implements CustomTransportStrategy, MonitoredTransport
{
  override readonly transportId = REDIS_PUBSUB_TRANSPORT;
  /** Handler failures reach this class, which logs and counts them per channel. */
  override readonly propagatesEventHandlerErrors = true;
  readonly name: string;
  private readonly settings: ResolvedOptions;
  private readonly link: TransportLink;
  private readonly codec: MessageCodec;
  private readonly customDeserializer: boolean;
  private readonly channelRoutes = new Map<string, Route>();
  private readonly patternRoutes = new Map<string, Route>();
  private readonly delivery: DeliveryGuard;
  private readonly streams = new RequestStreams();
  private inFlight = 0;
  private drained?: () => void;
  private closing = false;
  private closed?: Promise<void>;
  /** Whether processing hooks were installed (by instrumentation); without them events skip the hook plumbing. */
  private hooked = false;
  /** Set in listen() when OpenTelemetry is installed and a provider registered; the hot path checks only this. */
  private telemetry?: TransportTelemetry;

  constructor(options: RedisPubSubOptions = {}) {
    super();
    this.settings = resolveOptions(options, 'redis-pubsub-server');
    this.name = this.settings.name;
    this.initializeSerializer(options);
    this.initializeDeserializer(options);
    this.customDeserializer = options.deserializer !== undefined;
    this.codec = new MessageCodec(this.settings.maxPayloadBytes, this.settings.maxDepth);
    this.link = createLink('server', this.settings, (channel, payload, pattern) => this.onMessage(channel, payload, pattern));
    this.link.on('status', (state) => this._status$.next(state));
    this.delivery = new DeliveryGuard(
      this.link,
      (channel, problem) => this.reject(channel, problem),
      (channel, payload) => this.onMessage(channel, payload, undefined, true),
    );
  }

  listen(callback: (error?: unknown) => void): void {
    // Handlers are resolved once here, not per message.
    const batchHost = this.batchHost();
    for (const [key, handler] of this.messageHandlers) {
      const extras = handler.extras as RedisPubSubHandlerExtras | undefined;
      let batch: BatchDispatcher | undefined;
      try {
        const settings = batchSettings(key, handler);
        if (settings) batch = new BatchDispatcher(key, extras?.psubscribe ? key : undefined, handler, settings, batchHost);
      } catch (error) {
        return callback(error);
      }
      const route = { handler, isEvent: handler.isEventHandler === true, completion: this.eventCompletion(key), batch };
      if (extras?.durable) {
        if (extras.psubscribe) return callback(new Error(`${this.name}: "${key}": durable needs a channel, not a pattern (psubscribe)`));
        if (this.settings.cluster) return callback(new Error(`${this.name}: "${key}": durable channels are not supported with "cluster" yet`));
        this.delivery.addDurable(key);
      }
      if (extras?.psubscribe) {
        this.patternRoutes.set(key, route);
        this.link.subscribe('pattern', key);
      } else {
        this.channelRoutes.set(key, route);
        this.link.subscribe('channel', key);
      }
    }
    transportRegistry.add(this);
    this.telemetry ??= TransportTelemetry.start(this.link, { name: this.name, kind: 'server', stats: () => this.getStats(), inFlight: () => this.inFlight });
    // Resolves once subscribed and every durable channel knows where its stream stands.
    this.link
      .start()
      .then(() => this.delivery.started())
      .then(
        () => callback(),
        (error: unknown) => callback(error),
      );
  }

  /**
   * Stops taking messages, ends request streams at once (see RequestStreams), waits for the other
   * in-flight handlers (up to `closeTimeoutMs`), then closes both connections.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      this.delivery.close();
      const ended = this.streams.endAll();
      if (ended > 0) this.link.logger.log(`close(): ended ${ended} open request stream(s)`);
      await this.link.closeSubscriber();
      for (const route of [...this.channelRoutes.values(), ...this.patternRoutes.values()]) route.batch?.flushNow();
      await this.drain();
      await this.link.close();
      transportRegistry.markClosed(this);
    })();
    return this.closed;
  }

  on<E extends RedisPubSubEventName = RedisPubSubEventName, C extends RedisPubSubEventCallbacks[E] = RedisPubSubEventCallbacks[E]>(
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
    return { ...this.link.stats(), delivery: this.delivery.stats() };
  }

  /** Instrumentation bugs are logged: a throwing or rejecting hook must not crash the process or stall close(). */
  override setOnProcessingStartHook(hook: (transportId: Transport | symbol, context: unknown, done: () => Promise<unknown>) => void): void {
    this.hooked = true;
    super.setOnProcessingStartHook((transportId, context, done) => {
      let started = false;
      const once = () => ((started = true), done());
      try {
        const result: unknown = hook(transportId, context, once);
        if (isPromiseLike(result)) result.then(undefined, (error: unknown) => this.hookFailed('start', error));
        return result;
      } catch (error) {
        this.hookFailed('start', error);
        return started ? undefined : done();
      }
    });
  }

  override setOnProcessingEndHook(hook: (transportId: Transport | symbol, context: unknown) => void): void {
    this.hooked = true;
    super.setOnProcessingEndHook((transportId, context) => {
      try {
        hook(transportId, context);
      } catch (error) {
        this.hookFailed('end', error);
      }
    });
  }

  /** `replayed`: read back from a durable stream (not counted as received: the path probe reads that counter). */
  private onMessage(channel: string, payload: Buffer, pattern: string | undefined, replayed = false): void {
    if (this.closing) return;
    if (!replayed) this.link.counters.received++;
    const route = pattern === undefined ? this.channelRoutes.get(channel) : this.patternRoutes.get(pattern);
    if (!route) return;
    const parsed = this.codec.parse(payload);
    if (!parsed.ok) return this.reject(channel, parsed.problem);
    // A reply (ours to Nest's built-in client, matched by one of our globs) is never a request or an event.
    if (isReplyPacket(parsed.value)) return;
    if (this.customDeserializer) {
      this.inFlight++;
      // A deserializer that throws synchronously must reject here, not inside ioredis' event emission.
      new Promise((resolve) => resolve(this.deserializer.deserialize(parsed.value, { channel })))
        .then((packet) => {
          if (isReplyPacket(packet)) return;
          const valid = validatePacket(packet);
          if (!valid.ok) return this.reject(channel, valid.problem);
          this.dispatch(route, valid.value, channel, pattern, replayed, payload.length);
        })
        .catch((error: unknown) => this.reject(channel, `deserializer failed: ${errorText(error)}`))
        .finally(() => this.settled());
      return;
    }
    const packet = this.codec.toPacket(channel, parsed.value);
    if (!packet.ok) return this.reject(channel, packet.problem);
    this.dispatch(route, packet.value, channel, pattern, replayed, payload.length);
  }

  /** Every valid message passes here, one by one (replayed ones too): per-message checks belong before the batch hand-over. */
  private dispatch(route: Route, packet: IncomingPacket, channel: string, pattern: string | undefined, replayed: boolean, bodySize: number): void {
    if (packet.id === undefined && !this.delivery.admit(channel, pattern, packet.metadata, replayed)) return;
    if (!this.telemetry) return this.handle(route, packet, channel, pattern, undefined);
    const operation = this.telemetry.beginProcess({ name: channel, template: pattern }, packet.metadata, bodySize, packet.id);
    operation.run(() => this.handle(route, packet, channel, pattern, operation));
  }

  private handle(route: Route, packet: IncomingPacket, channel: string, pattern: string | undefined, operation: ProcessOperation | undefined): void {
    if (route.batch && packet.id === undefined) return route.batch.add(packet.data, channel, packet.metadata, operation?.end);
    const context = new RedisPubSubContext([channel, pattern, packet.metadata]);
    this.inFlight++;
    if (packet.id === undefined) {
      if (!this.hooked) {
        // A pattern route's key is the glob: its errors must name the channel, so its callbacks are per event.
        const completion = operation ? this.eventCompletion(channel, operation.end) : pattern === undefined ? route.completion : this.eventCompletion(channel);
        return this.runEvent(route, packet.data, context, completion);
      }
      return this.withProcessingHooks(context, (ended) =>
        this.runEvent(route, packet.data, context, this.eventCompletion(channel, (error, failed) => (ended(), operation?.end(error, failed)))),
      );
    }
    const id = packet.id;
    const replyChannel = packet.replyTo ?? nestReplyChannel(channel);
    if (route.isEvent) {
      this.settled();
      operation?.end(NO_MESSAGE_HANDLER, true);
      return void this.reply(replyChannel, { id, err: NO_MESSAGE_HANDLER, status: 'error', isDisposed: true }, undefined, operation?.context).catch(() => undefined);
    }
    let open = true;
    const stream: { stop?: () => void } = {};
    // Settles once the last reply is published (close() drains before closing the publisher).
    const respond = (message: WritePacket): Promise<unknown> => {
      if (!open) return Promise.resolve();
      if (message.err !== undefined && message.err !== STREAM_ENDED_BY_CLOSE) this.handlerFailed(channel, message.err);
      const sent = this.reply(replyChannel, { ...message, id }, channel, operation?.context);
      if (!message.isDisposed && message.err === undefined) {
        return sent.then((delivered) => {
          if (!delivered && open) {
            // The caller got an error instead of this value: the rest of the stream goes nowhere.
            open = false;
            this.settled();
            stream.stop?.();
            operation?.end('reply not sent', true);
          }
        });
      }
      open = false;
      operation?.end(message.err, message.err !== undefined && message.err !== STREAM_ENDED_BY_CLOSE);
      return sent.finally(() => this.settled());
    };
    this.handleRequest(
      context,
      async (): Promise<Observable<unknown>> => {
        try {
          return this.streams.track(this.transformToObservable(await route.handler(packet.data, context)), stream);
        } catch (error) {
          return throwError(() => error);
        }
      },
      respond,
    );
  }

  /**
   * Runs an event handler to its end without async/await plumbing: this is the per-message hot
   * path. The processing hooks wrap it only once someone installed them (Nest sets none itself).
   */
  private runEvent(route: Route, data: unknown, context: RedisPubSubContext, completion: EventCompletion): void {
    let result: unknown;
    try {
      result = route.handler(data, context);
    } catch (error) {
      return completion.fail(error);
    }
    if (isPromiseLike(result)) result.then(completion.consume, completion.fail);
    else completion.consume(result);
  }

  /** How an event handler's end is counted (and a failure logged against `channel`). */
  private eventCompletion(channel: string, ended?: (error?: unknown, failed?: boolean) => void): EventCompletion {
    const finish = (error?: unknown, failed = false) => {
      this.settled();
      ended?.(error, failed);
    };
    const fail = (error: unknown) => {
      this.handlerFailed(channel, error);
      finish(error, true);
    };
    const consume = (value: unknown) => (isObservable(value) ? value.subscribe({ error: fail, complete: finish }) : finish());
    return { finish, fail, consume };
  }

  /**
   * Publishes one reply; a reply larger than `maxPayloadBytes` (what a client with the same setting
   * accepts) is replaced by an error reply naming the size, and `false` is returned: the request is over.
   */
  private async reply(channel: string, message: WritePacket & { id: string }, requestChannel?: string, parent?: Context): Promise<boolean> {
    if (!this.telemetry) return this.publishReply(channel, message, requestChannel);
    // Replies carry no metadata: Nest's reply deserializer would take an extra key for a foreign payload.
    const operation = this.telemetry.beginSend(replyDestination(channel), undefined, message.id, parent);
    try {
      const delivered = await this.publishReply(channel, message, requestChannel);
      operation.end(undefined, delivered ? undefined : 'reply too large');
      return delivered;
    } catch (error) {
      operation.end(undefined, error);
      throw error;
    }
  }

  private async publishReply(channel: string, message: WritePacket & { id: string }, requestChannel?: string): Promise<boolean> {
    const text = JSON.stringify(await this.serializer.serialize(message));
    const problem = oversized(text, this.settings.maxPayloadBytes);
    if (problem === undefined) {
      await this.link.publish(channel, text);
      return true;
    }
    this.handlerFailed(requestChannel ?? channel, `reply not sent: ${problem}`);
    const refusal = { id: message.id, err: { status: 'error', message: `reply not sent: ${problem}` }, isDisposed: true };
    await this.link.publish(channel, JSON.stringify(await this.serializer.serialize(refusal)));
    return false;
  }

  private reject(channel: string, problem: string): void {
    this.link.counters.invalid++;
    this.link.logger.error(`Invalid message on channel "${channel}": ${problem}`);
  }

  private handlerFailed(channel: string, error: unknown): void {
    this.link.counters.handlerErrors++;
    this.link.logger.error(`Handler for channel "${channel}" failed: ${errorText(error)}`, error instanceof Error ? error.stack : undefined);
  }

  private hookFailed(which: 'start' | 'end', error: unknown): void {
    this.link.logger.error(`Processing ${which} hook failed: ${errorText(error)}`);
  }

  private settled(count = 1): void {
    if ((this.inFlight -= count) === 0) this.drained?.();
  }

  /** What batch dispatchers share with the per-event path: in-flight count, processing hooks, counters, logger. */
  private batchHost(): BatchHost {
    return {
      inFlight: (delta) => (delta > 0 ? void (this.inFlight += delta) : this.settled(-delta)),
      process: (context, body) => (this.hooked ? this.withProcessingHooks(context, body) : body(() => undefined)),
      counters: this.link.counters,
      logger: this.link.logger,
    };
  }

  /** Runs `body` inside Nest's processing hooks; `body` calls `ended` once its work is over. */
  private withProcessingHooks(context: BaseRpcContext, body: (ended: () => void) => void): void {
    this.runWithProcessingHooks(context, (runEndHook) => new Promise<void>((done) => body(() => (runEndHook(), done()))));
  }

  private async drain(): Promise<void> {
    if (this.inFlight === 0) return;
    const done = await within(new Promise<boolean>((resolve) => (this.drained = () => resolve(true))), this.settings.closeTimeoutMs);
    if (!done) this.link.logger.warn(`close(): ${this.inFlight} handler(s) still running after ${this.settings.closeTimeoutMs} ms`);
  }
}

function oversized(text: string, maxPayloadBytes: number): string | undefined {
  // A UTF-16 unit is at most 3 UTF-8 bytes: most replies need no byte count at all.
  if (text.length * 3 <= maxPayloadBytes) return undefined;
  const bytes = Buffer.byteLength(text);
  return bytes > maxPayloadBytes ? `reply of ${bytes} bytes exceeds maxPayloadBytes (${maxPayloadBytes})` : undefined;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';
}
