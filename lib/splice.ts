import type { Redis } from 'ioredis';

/**
 * Joins what a retired subscriber socket still delivers (a partition that healed, a stall that
 * ended, after the cut-over) with what its replacement delivers, so each event is handled once.
 *
 * Both sockets were subscribed to the same channels and patterns, and Redis writes each
 * subscription's messages to every subscriber in publish order: per key (a channel, or a pattern
 * and the channel it matched) the new socket's stream is a suffix of the old one's. The old socket's
 * events are handled until it reaches the first event the new socket delivered on that key (equal
 * bytes), and dropped from there on. When the old socket is ahead on a key (it delivered events the
 * new one has not yet), the new socket's copies are dropped instead, in order.
 *
 * Guarantee: never twice, provided payloads on one key are distinct around the splice point; late
 * events from the old socket may be handled after newer ones from the new socket (per key, the
 * late ones are all older). Identical payloads on one key can make the splice point ambiguous:
 * the splice then errs towards dropping the older copy.
 */
export class Splice {
  /** Events handled from the old socket after the cut-over. */
  spliced = 0;
  /** Copies dropped because the other socket had delivered them. */
  duplicates = 0;
  /** The first payload the new socket delivered, per key. */
  private readonly firstNew = new Map<string, Buffer>();
  /** Keys on which the old socket reached the new one's first event: the rest are duplicates. */
  private readonly caughtUp = new Set<string>();
  /** Per key, events handled from the old socket before the new one delivered any there. */
  private readonly oldAhead = new Map<string, Buffer[]>();

  constructor(readonly old: Redis) {}

  /** An event from the new (current) socket: false when the old socket already delivered it. */
  fromNew(key: string, payload: Buffer): boolean {
    if (this.firstNew.has(key)) return true;
    const ahead = this.oldAhead.get(key);
    if (ahead) {
      const index = ahead.findIndex((seen) => seen.equals(payload));
      if (index >= 0) {
        ahead.splice(0, index + 1);
        this.duplicates++;
        return false;
      }
      // None of them will come on the new socket: they were published before it subscribed.
      this.oldAhead.delete(key);
    }
    // A copy: ioredis' parser may hand out slices of a buffer it reuses.
    this.firstNew.set(key, Buffer.from(payload));
    return true;
  }

  /** An event from the old socket: true when it must be handled (the new socket will not deliver it). */
  fromOld(key: string, payload: Buffer): boolean {
    if (this.caughtUp.has(key)) {
      this.duplicates++;
      return false;
    }
    const first = this.firstNew.get(key);
    if (first === undefined) {
      let ahead = this.oldAhead.get(key);
      if (!ahead) this.oldAhead.set(key, (ahead = []));
      ahead.push(Buffer.from(payload));
    } else if (first.equals(payload)) {
      this.caughtUp.add(key);
      this.duplicates++;
      return false;
    }
    this.spliced++;
    return true;
  }
}

/** The splice key of an event: its channel, or its pattern and channel. */
export function spliceKey(channel: string, pattern: string | undefined): string {
  return pattern === undefined ? channel : `${pattern}\n${channel}`;
}
