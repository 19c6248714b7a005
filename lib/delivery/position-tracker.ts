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
  holes?: Hole[];
}

/**
 * Server side of gap and duplicate detection: the last sequence seen per (subscription,
 * channel, publisher). Memory is bounded: at most `maxEntries` entries (about 150 bytes each),
 * least recently used evicted first. A publisher seen for the first time (new process, new
 * client instance, or evicted) starts wherever it is: nothing before it can be judged.
 */
export class PositionTracker {
  private readonly last = new Map<string, Entry>();
  /** The hole the last `check()` opened, when it was asked to keep one. */
  opened: Hole | undefined;

  constructor(private readonly maxEntries = 10_000) {}

  get size(): number {
    return this.last.size;
  }

  /**
   * `> 0`: that many events of this publisher were skipped (with `keepHole`, remembered in
   * `opened` so late arrivals can fill it); `0`: the next one (or a first), or a late arrival that
   * fills a kept hole; `-1`: a repeat or an older event, to drop. Only a delivered event moves the position.
   */
  check(scope: string, publisher: string, seq: number, keepHole = false): number {
    const key = `${scope}\u0000${publisher}`;
    const entry = this.last.get(key);
    this.opened = undefined;
    if (entry !== undefined && seq <= entry.seq) return entry.holes && fill(entry.holes, seq) ? 0 : -1;
    // Delete and set: Map order is the recency order that eviction reads.
    if (entry !== undefined) this.last.delete(key);
    else if (this.last.size >= this.maxEntries) this.last.delete(this.last.keys().next().value!);
    if (entry === undefined) {
      this.last.set(key, { seq });
      return 0;
    }
    const missed = seq - entry.seq - 1;
    if (missed > 0 && keepHole) {
      const hole: Hole = { next: entry.seq + 1, to: seq - 1, filled: 0 };
      (entry.holes ??= []).push(hole);
      if (entry.holes.length > MAX_HOLES) entry.holes.shift();
      this.opened = hole;
    }
    entry.seq = seq;
    this.last.set(key, entry);
    return missed;
  }

  /** Late arrivals are over (the old socket drained): no hole can be filled any more. */
  forgetHoles(): void {
    for (const entry of this.last.values()) entry.holes = undefined;
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
