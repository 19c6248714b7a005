import type { LoggerService } from '@nestjs/common';
import type { MessageHandler } from '@nestjs/microservices';
import { isObservable } from 'rxjs';
import { LazyBatchContext, type RedisPubSubBatchContext } from './batch-context.js';
import { errorText } from './error-text.js';

/** `@EventPattern('metrics.*', { psubscribe: true, batch: true, maxBatchSize: 500 })`: the handler receives arrays. */
export interface RedisPubSubBatchExtras {
  /** Deliver the messages of this handler as arrays of payloads (with `RedisPubSubBatchContext` as `@Ctx()`). */
  batch?: boolean;
  /** Most messages in one batch. */
  maxBatchSize?: number;
  /** How long an idle handler waits for more messages before running a batch that is not full; 0 = what has already arrived. */
  maxWaitMs?: number;
  /** Messages queued behind a running batch; beyond it new messages are dropped, counted and logged. */
  maxPending?: number;
}

/** Ends one message's processing (its telemetry span); `failed` tells an error of `undefined` from success. */
type MessageEnd = (error?: unknown, failed?: boolean) => void;

export const BATCH_DEFAULTS = { maxBatchSize: 1_000, maxWaitMs: 0, maxPending: 10_000 } as const;

export type BatchSettings = Required<Omit<RedisPubSubBatchExtras, 'batch'>>;

/** What a dispatcher needs from its server. */
export interface BatchHost {
  /** Messages in flight (queued or running): `close()` waits for them. */
  inFlight(delta: number): void;
  /** Runs `body` between Nest's processing hooks; `ended` closes them. */
  process(context: RedisPubSubBatchContext, body: (ended: () => void) => void): void;
  readonly counters: { handlerErrors: number; dropped: number };
  readonly logger: LoggerService;
}

/**
 * Batch settings of the handler(s) Nest registered for `key` (several `@EventPattern`s of one
 * key are chained by Nest and called together, so they must agree), or undefined for per-event
 * handlers. Throws on invalid or inconsistent extras, so a typo fails `listen()`.
 */
export function batchSettings(key: string, head: MessageHandler): BatchSettings | undefined {
  const chain: MessageHandler[] = [];
  for (let h: MessageHandler | undefined = head; h; h = h.next) chain.push(h);
  const all = chain.map((h) => readExtras(key, h));
  const first = all[0];
  if (all.some((s) => JSON.stringify(s) !== JSON.stringify(first))) {
    throw new TypeError(`nestjs-redis-pubsub: the handlers of "${key}" disagree on batch, maxBatchSize, maxWaitMs or maxPending: Nest calls them together, give them the same`);
  }
  return first;
}

function readExtras(key: string, handler: MessageHandler): BatchSettings | undefined {
  const extras = (handler.extras ?? {}) as RedisPubSubBatchExtras;
  const { batch, maxBatchSize, maxWaitMs, maxPending } = extras;
  const fail = (problem: string) => new TypeError(`nestjs-redis-pubsub: handler of "${key}": ${problem}`);
  if (!batch) {
    if (maxBatchSize !== undefined || maxWaitMs !== undefined || maxPending !== undefined) throw fail('maxBatchSize, maxWaitMs and maxPending need batch: true');
    return undefined;
  }
  if (!handler.isEventHandler) throw fail('batch: true is for @EventPattern handlers, not @MessagePattern');
  const settings = {
    maxBatchSize: maxBatchSize ?? BATCH_DEFAULTS.maxBatchSize,
    maxWaitMs: maxWaitMs ?? BATCH_DEFAULTS.maxWaitMs,
    maxPending: maxPending ?? BATCH_DEFAULTS.maxPending,
  };
  if (!Number.isInteger(settings.maxBatchSize) || settings.maxBatchSize < 1) throw fail(`maxBatchSize must be a positive integer, got ${String(maxBatchSize)}`);
  // setTimeout fires at once beyond 2^31 - 1 ms.
  if (typeof settings.maxWaitMs !== 'number' || !(settings.maxWaitMs >= 0 && settings.maxWaitMs <= 2_147_483_647)) {
    throw fail(`maxWaitMs must be a number from 0 to 2147483647, got ${String(maxWaitMs)}`);
  }
  if (!Number.isInteger(settings.maxPending) || settings.maxPending < settings.maxBatchSize) {
    throw fail(`maxPending must be an integer >= maxBatchSize (${settings.maxBatchSize}), got ${String(maxPending)}`);
  }
  return settings;
}

/**
 * Hands the messages of one batch handler over as arrays, one batch at a time.
 *
 * A batch is what has already arrived: ioredis parses every reply of one socket read and emits
 * them synchronously, one after the other (`DataHandler` -> `Decoder.write`), so a flush on
 * `process.nextTick` (run right after that read's callback) sees all of them;
 * test/batch-handlers.spec.ts pins that behaviour. Not `setImmediate`: libuv performs up to 32
 * reads of 64 KiB per socket in one poll phase, so a backlog would queue ~2 MiB of messages
 * before the first flush. A batch is never held back to fill up unless `maxWaitMs` asks for it.
 *
 * Order is kept within and across batches (one FIFO queue); the next batch starts only once the
 * previous one settled, so a slow handler queues messages behind it, up to `maxPending`. Beyond
 * that limit new messages are dropped (counted in `messages.dropped`, logged at the start of an
 * episode and with its count when the handler caught up): memory stays bounded by
 * `maxPending + maxBatchSize` messages per batch handler.
 */
export class BatchDispatcher {
  private payloads: unknown[] = [];
  // Per-message columns, aligned with `payloads` but written only where a message has a value:
  // a channel route's channel is its key, and most events carry no metadata (and, without
  // telemetry, no span), so the common message costs one push. Holes read as undefined.
  /** Channel of each message (pattern routes only). */
  private channels: string[] = [];
  private metadata: Array<Record<string, unknown> | undefined> = [];
  /** What ends each message's telemetry span. */
  private ends: Array<MessageEnd | undefined> = [];
  private running = false;
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private droppedSinceLastBatch = 0;
  private readonly flush = () => {
    this.scheduled = false;
    this.timer = undefined;
    if (!this.running && this.payloads.length > 0) this.runNext();
  };

  /** `pattern`: the glob of a `psubscribe` handler (its key), undefined for a channel handler. */
  constructor(
    private readonly key: string,
    private readonly pattern: string | undefined,
    private readonly handler: MessageHandler,
    private readonly settings: BatchSettings,
    private readonly host: BatchHost,
  ) {}

  add(payload: unknown, channel: string, metadata: Record<string, unknown> | undefined, end?: MessageEnd): void {
    const index = this.payloads.length;
    if (index >= this.settings.maxPending) return this.drop(channel, end);
    this.payloads.push(payload);
    if (this.pattern !== undefined) this.channels[index] = channel;
    if (metadata !== undefined) this.metadata[index] = metadata;
    if (end !== undefined) this.ends[index] = end;
    this.host.inFlight(1);
    if (this.running) return;
    if (!this.scheduled) {
      this.scheduled = true;
      if (this.settings.maxWaitMs === 0) process.nextTick(this.flush);
      else this.timer = setTimeout(this.flush, this.settings.maxWaitMs);
    } else if (this.timer && this.payloads.length >= this.settings.maxBatchSize) {
      // Full before maxWaitMs: no reason to wait longer.
      clearTimeout(this.timer);
      this.timer = undefined;
      process.nextTick(this.flush);
    }
  }

  /** `close()`: what is queued goes now, without waiting for `maxWaitMs`. */
  flushNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.flush();
  }

  private runNext(): void {
    const size = Math.min(this.payloads.length, this.settings.maxBatchSize);
    let payloads: unknown[];
    let channels: string[];
    let metadata: Array<Record<string, unknown> | undefined>;
    let ends: Array<MessageEnd | undefined>;
    if (size === this.payloads.length) {
      payloads = this.payloads;
      channels = this.channels;
      metadata = this.metadata;
      ends = this.ends;
      this.payloads = [];
      this.channels = [];
      this.metadata = [];
      this.ends = [];
    } else {
      // A column shorter than `size` is taken whole (its missing tail had no values).
      payloads = this.payloads.splice(0, size);
      channels = this.channels.splice(0, size);
      metadata = this.metadata.splice(0, size);
      ends = this.ends.splice(0, size);
    }
    if (this.droppedSinceLastBatch > 0) {
      this.host.logger.error(`Batch handler for "${this.key}" caught up: ${this.droppedSinceLastBatch} message(s) were dropped while maxPending (${this.settings.maxPending}) was reached`);
      this.droppedSinceLastBatch = 0;
    }
    this.running = true;
    const context = new LazyBatchContext(size, this.pattern === undefined ? this.key : channels, this.pattern, metadata);
    this.host.process(context, (ended) => this.invoke(payloads, context, (error, failed) => {
      ended();
      for (let i = 0; i < ends.length; i++) ends[i]?.(error, failed);
    }));
  }

  /** Calls the handler without async/await plumbing (as the per-event path does) and settles the batch once. */
  private invoke(payloads: unknown[], context: RedisPubSubBatchContext, ended: MessageEnd): void {
    let settled = false;
    const finish = (error?: unknown, failed = false) => {
      if (settled) return;
      settled = true;
      this.running = false;
      this.host.inFlight(-payloads.length);
      ended(error, failed);
      // Messages that queued while this batch ran have already arrived: no reason to wait.
      if (this.payloads.length > 0) this.runNext();
    };
    const fail = (error: unknown) => {
      this.host.counters.handlerErrors++;
      this.host.logger.error(
        `Batch handler for "${this.key}" failed on a batch of ${payloads.length} message(s): ${errorText(error)}`,
        error instanceof Error ? error.stack : undefined,
      );
      finish(error, true);
    };
    let result: unknown;
    try {
      result = this.handler(payloads, context);
    } catch (error) {
      return fail(error);
    }
    const consume = (value: unknown) => (isObservable(value) ? value.subscribe({ error: fail, complete: () => finish() }) : finish());
    if (isPromiseLike(result)) result.then(consume, fail);
    else consume(result);
  }

  private drop(channel: string, end: MessageEnd | undefined): void {
    this.host.counters.dropped++;
    end?.(new Error(`dropped: maxPending (${this.settings.maxPending}) messages queued for "${this.key}"`), true);
    if (this.droppedSinceLastBatch++ === 0) {
      this.host.logger.error(
        `Batch handler for "${this.key}" is behind: maxPending (${this.settings.maxPending}) messages are queued; dropping new messages until it catches up, first on channel "${channel}"`,
      );
    }
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';
}
