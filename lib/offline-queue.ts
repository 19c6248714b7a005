import { retryDelay } from './backoff.js';
import type { OfflineQueueOptions, RetryOptions } from './options.js';
import type { TransportLink } from './transport-link.js';

/** Publishes the event; resolves to the number of subscribers Redis delivered it to. */
export type SendEvent = () => Promise<number>;

interface QueuedEvent {
  channel: string;
  send: SendEvent;
  /** Reaching nobody means "the subscribers are not back yet": sent again until one gets it (see flush). */
  awaitReceiver: boolean;
  resolve: (receivers: number) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  /** Published at least once (it reached nobody): its timeout resolves 0 rather than failing. */
  sent: boolean;
  /** A publish of it awaits Redis' answer. */
  inFlight: boolean;
  /** Its time ran out while a publish of it was in flight: that answer settles it, without retry. */
  expired: boolean;
}

/**
 * Events emitted while the publisher is down (or suspect) wait here, bounded in size and time,
 * and are published in order once it is back. A full queue or an expired event
 * fails the caller's emit() with a clear error instead of growing without bound.
 *
 * The publisher often comes back before the subscribers have resubscribed (after a restart, a
 * failover): held events would reach nobody. So for a channel that had subscribers before (the
 * caller says which: `awaitReceiver`), the first held event is sent alone; while Redis counts no
 * receiver it is sent again with backoff, the channel's other held events waiting behind it in
 * order, until a subscriber gets it or its time runs out (it then resolves 0). Reaching nobody
 * means nobody has it: sending it again never delivers it twice.
 */
export class OfflineQueue {
  private readonly queue: QueuedEvent[] = [];
  /** Channels whose first held event is out, awaiting a receiver: their others wait. */
  private readonly probing = new Set<string>();
  private readonly retries = new Set<NodeJS.Timeout>();
  /** Set by close(): an emit() that raced close() past its own check is refused here, before any timer. */
  private closedReason?: string;

  constructor(
    private readonly settings: Required<OfflineQueueOptions>,
    private readonly retry: Required<RetryOptions>,
    private readonly link: Pick<TransportLink, 'canPublish' | 'onPublisherUsable'>,
  ) {
    // Whenever a publisher is usable again: a new socket, a suspect one that showed life, or its replacement.
    link.onPublisherUsable(() => this.flush());
  }

  get size(): number {
    return this.queue.length;
  }

  /** Whether events of `channel` are held: a new one must queue behind them to keep their order. */
  holds(channel: string): boolean {
    if (this.queue.length === 0) return false;
    return this.probing.has(channel) || this.queue.some((event) => event.channel === channel);
  }

  enqueue(channel: string, send: SendEvent, awaitReceiver = false): Promise<number> {
    const { maxSize, timeoutMs } = this.settings;
    if (this.closedReason !== undefined) return Promise.reject(new Error(`event "${channel}" not sent: ${this.closedReason}`));
    if (this.queue.length >= maxSize) {
      return Promise.reject(new Error(`event "${channel}" not sent: Redis is unreachable and the offline queue is full (${maxSize} events)`));
    }
    return new Promise<number>((resolve, reject) => {
      const event: QueuedEvent = {
        channel,
        send,
        awaitReceiver,
        resolve,
        reject,
        sent: false,
        inFlight: false,
        expired: false,
        timer: setTimeout(() => this.expire(event), timeoutMs),
      };
      this.queue.push(event);
    });
  }

  /** Fails every held event and refuses new ones. */
  close(reason: string): void {
    this.closedReason = reason;
    for (const timer of this.retries) clearTimeout(timer);
    this.retries.clear();
    this.probing.clear();
    for (const event of this.queue.splice(0)) {
      clearTimeout(event.timer);
      event.reject(new Error(`event "${event.channel}" not sent: ${reason}`));
    }
  }

  /** Sends, in order, the events whose publisher is usable; on a cluster, those of other shards keep waiting. */
  private flush(): void {
    const waiting: QueuedEvent[] = [];
    for (const event of this.queue.splice(0)) {
      if (this.probing.has(event.channel) || !this.link.canPublish(event.channel)) {
        waiting.push(event);
        continue;
      }
      if (event.awaitReceiver) {
        this.probing.add(event.channel);
        waiting.push(event);
        this.probe(event, 1);
        continue;
      }
      clearTimeout(event.timer);
      event.send().then(event.resolve, event.reject);
    }
    this.queue.unshift(...waiting);
  }

  private probe(event: QueuedEvent, attempt: number): void {
    event.inFlight = true;
    event.send().then(
      (receivers) => {
        event.inFlight = false;
        event.sent = true;
        if (!this.queue.includes(event)) return; // closed meanwhile
        if (receivers > 0 || event.expired) return this.settle(event, () => event.resolve(receivers), receivers > 0);
        const timer = setTimeout(() => {
          this.retries.delete(timer);
          if (!this.queue.includes(event)) return;
          if (this.link.canPublish(event.channel)) this.probe(event, attempt + 1);
          // The publisher went down again: the next flush sends it (and its followers) again.
          else this.probing.delete(event.channel);
        }, retryDelay(attempt, this.retry));
        this.retries.add(timer);
      },
      (error: Error) => {
        event.inFlight = false;
        this.settle(event, () => event.reject(error), false);
      },
    );
  }

  /** The first held event of its channel is done: the others go now, without waiting for receivers again if one was reached. */
  private settle(event: QueuedEvent, done: () => void, reached: boolean): void {
    this.remove(event);
    clearTimeout(event.timer);
    this.probing.delete(event.channel);
    if (reached) for (const other of this.queue) if (other.channel === event.channel) other.awaitReceiver = false;
    done();
    this.flush();
  }

  private expire(event: QueuedEvent): void {
    if (!this.queue.includes(event)) return;
    if (event.inFlight) {
      event.expired = true; // the answer of its publish settles it
      return;
    }
    if (!event.sent) {
      this.remove(event);
      event.reject(new Error(`event "${event.channel}" not sent: Redis was unreachable for ${this.settings.timeoutMs} ms`));
      return;
    }
    // Published, and nobody came back within its time: what a plain emit() says, 0 receivers.
    this.settle(event, () => event.resolve(0), false);
  }

  private remove(event: QueuedEvent): void {
    const index = this.queue.indexOf(event);
    if (index >= 0) this.queue.splice(index, 1);
  }
}
