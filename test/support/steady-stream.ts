import type { Redis } from 'ioredis';
import { closeClient, connectClient } from '../harness/clients.js';

/**
 * Sequence-numbered events at a steady rate, published straight to Redis (never through the fault
 * proxy): `{ data: { seq } }` on `channel`. A PUBLISH Redis executed counts as published, whatever
 * the fault does to the receiver; one that failed (Redis unreachable) is not counted.
 */
export class SteadyStream {
  readonly published = new Set<number>();
  private seq = 0;
  private timer?: NodeJS.Timeout;
  private readonly inFlight = new Set<Promise<void>>();

  private constructor(
    private readonly client: Redis,
    private readonly channel: string,
    private readonly everyMs: number,
  ) {}

  static async start(url: string, channel = 'inbound', everyMs = 15): Promise<SteadyStream> {
    // An offline queue and retries of its own: a stalled Redis only delays these PUBLISHes.
    const stream = new SteadyStream(await connectClient(url, { maxRetriesPerRequest: null, retryStrategy: () => 10 }), channel, everyMs);
    stream.timer = setInterval(() => stream.next(), everyMs);
    return stream;
  }

  /** The last sequence number sent so far. */
  get last(): number {
    return this.seq;
  }

  /** Stops publishing and waits until every PUBLISH sent has been answered. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.inFlight]);
    await closeClient(this.client);
  }

  private next(): void {
    const seq = ++this.seq;
    const sent = this.client.publish(this.channel, JSON.stringify({ data: { seq } })).then(
      () => void this.published.add(seq),
      () => undefined,
    );
    this.inFlight.add(sent);
    void sent.finally(() => this.inFlight.delete(sent));
  }
}

export interface Tally {
  lost: number[];
  duplicates: number[];
  /** Events handled after one with a higher sequence number. */
  late: number;
}

/** Compares what handlers received (sequence numbers, in order) with what was published. */
export function tally(handled: number[], published: Iterable<number>): Tally {
  const seen = new Map<number, number>();
  let highest = 0;
  let late = 0;
  for (const seq of handled) {
    seen.set(seq, (seen.get(seq) ?? 0) + 1);
    if (seq < highest) late++;
    highest = Math.max(highest, seq);
  }
  return {
    lost: [...published].filter((seq) => !seen.has(seq)).sort((a, b) => a - b),
    duplicates: [...seen].filter(([, count]) => count > 1).map(([seq]) => seq),
    late,
  };
}
