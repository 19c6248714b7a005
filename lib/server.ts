import { Server, type CustomTransportStrategy, type MessageHandler, type Transport, type WritePacket } from '@nestjs/microservices';
import { isObservable, throwError, type Observable } from 'rxjs';
import type { Redis } from 'ioredis';
import { DeliveryGuard } from './delivery/delivery-guard.js';
import { errorText } from './error-text.js';
import { MessageCodec, validatePacket, type IncomingPacket } from './codec.js';
import { REDIS_PUBSUB_TRANSPORT, type RedisPubSubStatus } from './constants.js';
import { RedisPubSubContext } from './context.js';
import { resolveOptions, type RedisPubSubOptions, type ResolvedOptions } from './options.js';
import { PubSubLink, type RedisPubSubEventCallbacks, type RedisPubSubEventName, type RedisPubSubStats } from './pubsub-link.js';
import { transportRegistry, type MonitoredTransport } from './transport-registry.js';

const NO_MESSAGE_HANDLER = 'There is no matching message handler defined in the remote service.';

interface Route {
  handler: MessageHandler;
  isEvent: boolean;
  /** Completion callbacks for events on this route's channel, bound once: the event hot path allocates none. */
  completion: EventCompletion;
}

interface EventCompletion {
  finish: () => void;
  fail: (error: unknown) => void;
  consume: (value: unknown) => void;
}

/** `@EventPattern('orders.*', { psubscribe: true })` asks for a PSUBSCRIBE glob instead of a channel. */
export interface RedisPubSubHandlerExtras {
  psubscribe?: boolean;
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
  private readonly link: PubSubLink;
  private readonly codec: MessageCodec;
  private readonly customDeserializer: boolean;
  private readonly channelRoutes = new Map<string, Route>();
  private readonly patternRoutes = new Map<string, Route>();
  private readonly delivery: DeliveryGuard;
  private inFlight = 0;
  private drained?: () => void;
  private closing = false;
  private closed?: Promise<void>;
  /** Whether processing hooks were installed (by instrumentation); without them events skip the hook plumbing. */
  private hooked = false;

  constructor(options: RedisPubSubOptions = {}) {
    super();
    this.settings = resolveOptions(options, 'redis-pubsub-server');
    this.name = this.settings.name;
    this.initializeSerializer(options);
    this.initializeDeserializer(options);
    this.customDeserializer = options.deserializer !== undefined;
    this.codec = new MessageCodec(this.settings.maxPayloadBytes, this.settings.maxDepth);
    this.link = new PubSubLink('server', this.settings, (channel, payload, pattern) => this.onMessage(channel, payload, pattern));
    this.link.on('status', (state) => this._status$.next(state));
    this.delivery = new DeliveryGuard(this.link, (channel, problem) => this.reject(channel, problem));
  }

  listen(callback: (error?: unknown) => void): void {
    // Handlers are resolved once here, not per message.
    for (const [key, handler] of this.messageHandlers) {
      const route = { handler, isEvent: handler.isEventHandler === true, completion: this.eventCompletion(key) };
      if ((handler.extras as RedisPubSubHandlerExtras | undefined)?.psubscribe) {
        this.patternRoutes.set(key, route);
        this.link.subscribe('pattern', key);
      } else {
        this.channelRoutes.set(key, route);
        this.link.subscribe('channel', key);
      }
    }
    transportRegistry.add(this);
    this.link.start().then(
      () => callback(),
      (error: unknown) => callback(error),
    );
  }

  /** Stops taking messages, waits for in-flight handlers (up to `closeTimeoutMs`), then closes both connections. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      await this.link.closeSubscriber();
      await this.drain();
      await this.link.close();
      transportRegistry.delete(this);
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
    return [this.link.publisher.redis, this.link.subscriber.redis] as T;
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

  private onMessage(channel: string, payload: Buffer, pattern: string | undefined): void {
    if (this.closing) return;
    this.link.counters.received++;
    const route = pattern === undefined ? this.channelRoutes.get(channel) : this.patternRoutes.get(pattern);
    if (!route) return;
    const parsed = this.codec.parse(payload);
    if (!parsed.ok) return this.reject(channel, parsed.problem);
    if (this.customDeserializer) {
      this.inFlight++;
      // A deserializer that throws synchronously must reject here, not inside ioredis' event emission.
      new Promise((resolve) => resolve(this.deserializer.deserialize(parsed.value, { channel })))
        .then((packet) => {
          const valid = validatePacket(packet);
          if (!valid.ok) return this.reject(channel, valid.problem);
          this.dispatch(route, valid.value, channel, pattern);
        })
        .catch((error: unknown) => this.reject(channel, `deserializer failed: ${errorText(error)}`))
        .finally(() => this.settled());
      return;
    }
    const packet = this.codec.toPacket(channel, parsed.value);
    if (!packet.ok) return this.reject(channel, packet.problem);
    this.dispatch(route, packet.value, channel, pattern);
  }

  private dispatch(route: Route, packet: IncomingPacket, channel: string, pattern: string | undefined): void {
    if (packet.id === undefined && !this.delivery.admit(channel, pattern, packet.metadata)) return;
    const context = new RedisPubSubContext([channel, pattern, packet.metadata]);
    this.inFlight++;
    if (packet.id === undefined) {
      // A pattern route's key is the glob: its errors must name the channel, so its callbacks are per event.
      if (!this.hooked) return this.runEvent(route, packet.data, context, pattern === undefined ? route.completion : this.eventCompletion(channel));
      this.runWithProcessingHooks(
        context,
        (runEndHook) => new Promise<void>((done) => this.runEvent(route, packet.data, context, this.eventCompletion(channel, () => (runEndHook(), done())))),
      );
      return;
    }
    const id = packet.id;
    const replyChannel = packet.replyTo ?? `${channel}.reply`;
    if (route.isEvent) {
      this.settled();
      return void this.reply(replyChannel, { id, err: NO_MESSAGE_HANDLER, status: 'error', isDisposed: true }).catch(() => undefined);
    }
    let open = true;
    const respond = (message: WritePacket) => {
      if (open && (message.isDisposed || message.err !== undefined)) {
        open = false;
        this.settled();
      }
      if (message.err !== undefined) this.handlerFailed(channel, message.err);
      return this.reply(replyChannel, { ...message, id });
    };
    this.handleRequest(
      context,
      async (): Promise<Observable<unknown>> => {
        try {
          return this.transformToObservable(await route.handler(packet.data, context));
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
  private eventCompletion(channel: string, ended?: () => void): EventCompletion {
    const finish = () => {
      this.settled();
      ended?.();
    };
    const fail = (error: unknown) => {
      this.handlerFailed(channel, error);
      finish();
    };
    const consume = (value: unknown) => (isObservable(value) ? value.subscribe({ error: fail, complete: finish }) : finish());
    return { finish, fail, consume };
  }

  private async reply(channel: string, message: WritePacket & { id: string }): Promise<void> {
    const serialized = await this.serializer.serialize(message);
    await this.link.publisher.redis.publish(channel, JSON.stringify(serialized));
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

  private settled(): void {
    if (--this.inFlight === 0) this.drained?.();
  }

  private async drain(): Promise<void> {
    if (this.inFlight === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => (this.drained = () => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.settings.closeTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (!done) this.link.logger.warn(`close(): ${this.inFlight} handler(s) still running after ${this.settings.closeTimeoutMs} ms`);
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';
}
