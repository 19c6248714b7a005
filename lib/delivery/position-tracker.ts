/**
 * Positions skipped by a jump, while a late delivery can still fill them: after a cut-over the old
 * subscriber socket delivers, behind the replacement's newer events, what Redis held for it.
 * Late events arrive in publish order, so `next` only moves forward.
 */
export interface Hole {
  /** The lowest position of the hole still expected. */
  next: number;
  to: number;
  /** Positions of the hole that did arrive late. */
  filled: number;
}

/** Holes kept per position key; an older one is given up (its rest stays lost). */
const MAX_HOLES = 8;

interface Entry {
  seq: number;
  /** The clock of its last check. */
  used: number;
  holes?: Hole[];
}

/**
 * Server side of gap and duplicate detection: the last sequence seen per (subscription,
 * channel, publisher). Memory is bounded: at most `maxEntries` entries (about 150 bytes each).
 * When full, the least recently used tenth is evicted in one sweep. On the hot path entries are
 * updated in place and no key is concatenated (nested maps): hashing a freshly built key string
 * per message cost more than the rest of the check together. A publisher seen for the first time
 * (new process, new client instance, or evicted) starts wherever it is: nothing before it can be judged.
 */
export class PositionTracker {
  /** subscription ('' for a channel, else the pattern) -> channel -> publisher -> entry */
  private readonly subscriptions = new Map<string, Map<string, Map<string, Entry>>>();
  private entries = 0;
  private clock = 0;
  /** The hole the last `check()` opened, when it was asked to keep one. */
  opened: Hole | undefined;

  constructor(private readonly maxEntries = 10_000) {}

  get size(): number {
    return this.entries;
  }

  /**
   * `> 0`: that many events of this publisher were skipped (with `keepHole`, remembered in
   * `opened` so late arrivals can fill it); `0`: the next one (or a first), or a late arrival that
   * fills a kept hole; `-1`: a repeat or an older event, to drop. Only a delivered event moves the position.
   */
  check(subscription: string, channel: string, publisher: string, seq: number, keepHole = false): number {
    const now = ++this.clock;
    this.opened = undefined;
    const entry = this.subscriptions.get(subscription)?.get(channel)?.get(publisher);
    if (entry === undefined) {
      if (this.entries >= this.maxEntries) this.evict();
      let channels = this.subscriptions.get(subscription);
      if (!channels) this.subscriptions.set(subscription, (channels = new Map()));
      let publishers = channels.get(channel);
      if (!publishers) channels.set(channel, (publishers = new Map()));
      publishers.set(publisher, { seq, used: now });
      this.entries++;
      return 0;
    }
    entry.used = now;
    if (seq <= entry.seq) return entry.holes && fill(entry.holes, seq) ? 0 : -1;
    const missed = seq - entry.seq - 1;
    if (missed > 0 && keepHole) {
      const hole: Hole = { next: entry.seq + 1, to: seq - 1, filled: 0 };
      (entry.holes ??= []).push(hole);
      if (entry.holes.length > MAX_HOLES) entry.holes.shift();
      this.opened = hole;
    }
    entry.seq = seq;
    return missed;
  }

  /** Late arrivals are over (the old socket drained): no hole can be filled any more. */
  forgetHoles(): void {
    for (const channels of this.subscriptions.values()) {
      for (const publishers of channels.values()) for (const entry of publishers.values()) entry.holes = undefined;
    }
  }

  /** Drops every entry not used in the last 90% of `maxEntries` checks: at most that many remain. */
  private evict(): void {
    const cutoff = this.clock - Math.ceil(this.maxEntries * 0.9);
    for (const [subscription, channels] of this.subscriptions) {
      for (const [channel, publishers] of channels) {
        for (const [publisher, entry] of publishers) {
          if (entry.used > cutoff) continue;
          publishers.delete(publisher);
          this.entries--;
        }
        if (publishers.size === 0) channels.delete(channel);
      }
      if (channels.size === 0) this.subscriptions.delete(subscription);
    }
  }
}

function fill(holes: Hole[], seq: number): boolean {
  for (const hole of holes) {
    if (seq < hole.next || seq > hole.to) continue;
    hole.filled++;
    hole.next = seq + 1;
    return true;
  }
  return false;
}
