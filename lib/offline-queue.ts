import type { OfflineQueueOptions } from './options.js';
import type { TransportLink } from './transport-link.js';

/** Publishes the event; resolves to the number of subscribers Redis delivered it to. */
export type SendEvent = () => Promise<number>;

interface QueuedEvent {
  channel: string;
  send: SendEvent;
  resolve: (receivers: number) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Events emitted while the publisher is down (or suspect) wait here, bounded in size and time,
 * and are published in order once it is back. A full queue or an expired event
 * fails the caller's emit() with a clear error instead of growing without bound.
 */
export class OfflineQueue {
  private readonly queue: QueuedEvent[] = [];
  /** Set by close(): an emit() that raced close() past its own check is refused here, before any timer. */
  private closedReason?: string;

  constructor(
    private readonly settings: Required<OfflineQueueOptions>,
    private readonly link: Pick<TransportLink, 'canPublish' | 'onPublisherUsable'>,
  ) {
    // Whenever a publisher is usable again: a new socket, a suspect one that showed life, or its replacement.
    link.onPublisherUsable(() => this.flush());
  }

  get size(): number {
    return this.queue.length;
  }

  enqueue(channel: string, send: SendEvent): Promise<number> {
    const { maxSize, timeoutMs } = this.settings;
    if (this.closedReason !== undefined) return Promise.reject(new Error(`event "${channel}" not sent: ${this.closedReason}`));
    if (this.queue.length >= maxSize) {
      return Promise.reject(new Error(`event "${channel}" not sent: Redis is unreachable and the offline queue is full (${maxSize} events)`));
    }
    return new Promise<number>((resolve, reject) => {
      const event: QueuedEvent = {
        channel,
        send,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.remove(event);
          reject(new Error(`event "${channel}" not sent: Redis was unreachable for ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.queue.push(event);
    });
  }

  /** Fails every held event and refuses new ones. */
  close(reason: string): void {
    this.closedReason = reason;
    for (const event of this.queue.splice(0)) {
      clearTimeout(event.timer);
      event.reject(new Error(`event "${event.channel}" not sent: ${reason}`));
    }
  }

  /** Sends, in order, the events whose publisher is usable; on a cluster, those of other shards keep waiting. */
  private flush(): void {
    const waiting: QueuedEvent[] = [];
    for (const event of this.queue.splice(0)) {
      if (!this.link.canPublish(event.channel)) {
        waiting.push(event);
        continue;
      }
      clearTimeout(event.timer);
      event.send().then(event.resolve, event.reject);
    }
    this.queue.push(...waiting);
  }

  private remove(event: QueuedEvent): void {
    const index = this.queue.indexOf(event);
    if (index >= 0) this.queue.splice(index, 1);
  }
}
