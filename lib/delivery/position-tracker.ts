/**
 * Server side of gap and duplicate detection: the last sequence seen per (subscription,
 * channel, publisher). Memory is bounded: at most `maxEntries` entries (about 150 bytes each),
 * least recently used evicted first. A publisher seen for the first time (new process, new
 * client instance, or evicted) starts wherever it is: nothing before it can be judged.
 */
export class PositionTracker {
  private readonly last = new Map<string, number>();

  constructor(private readonly maxEntries = 10_000) {}

  get size(): number {
    return this.last.size;
  }

  /**
   * `> 0`: that many events of this publisher were skipped; `0`: the next one (or a first);
   * `-1`: a repeat or an older event, to drop. Only a delivered event moves the position.
   */
  check(scope: string, publisher: string, seq: number): number {
    const key = `${scope}\u0000${publisher}`;
    const previous = this.last.get(key);
    if (previous !== undefined && seq <= previous) return -1;
    // Delete and set: Map order is the recency order that eviction reads.
    if (previous !== undefined) this.last.delete(key);
    else if (this.last.size >= this.maxEntries) this.last.delete(this.last.keys().next().value!);
    this.last.set(key, seq);
    return previous === undefined ? 0 : seq - previous - 1;
  }
}
