import type { Redis } from 'ioredis';
import { keySlot } from './cluster/key-slot.js';
import { errorText } from './error-text.js';

/** `channel`: SUBSCRIBE, `pattern`: PSUBSCRIBE, `shard`: SSUBSCRIBE (a shard channel of Redis Cluster). */
export type SubscriptionKind = 'channel' | 'pattern' | 'shard';

const KINDS = ['channel', 'pattern', 'shard'] as const;

function emptySets(): Record<SubscriptionKind, Set<string>> {
  return { channel: new Set<string>(), pattern: new Set<string>(), shard: new Set<string>() };
}

export interface SubscribeResult {
  confirmed: number;
  failed: Array<{ kind: SubscriptionKind; name: string; error: string }>;
}

/** Batches keep one SUBSCRIBE command (and its reply count) bounded. */
const BATCH = 500;

/**
 * The channels and patterns the transport must be subscribed to, and which of them
 * Redis has acknowledged on the current subscriber socket. The transport owns this
 * list: ioredis' autoResubscribe reports "ready" before its SUBSCRIBEs are answered,
 * and one bad channel fails its whole batch.
 */
export class SubscriptionRegistry {
  private readonly confirmed = emptySets();

  constructor(private readonly wanted: Record<SubscriptionKind, Set<string>> = emptySets()) {}

  add(kind: SubscriptionKind, name: string): void {
    this.wanted[kind].add(name);
  }

  /** A name the caller subscribed at run time and Redis already acknowledged on the current socket. */
  addConfirmed(kind: SubscriptionKind, name: string): void {
    this.wanted[kind].add(name);
    this.confirmed[kind].add(name);
  }

  /** A name no longer wanted (the caller unsubscribes it from the current socket itself). */
  remove(kind: SubscriptionKind, name: string): void {
    this.wanted[kind].delete(name);
    this.confirmed[kind].delete(name);
  }

  countOf(kind: SubscriptionKind): number {
    return this.wanted[kind].size;
  }

  get expectedCount(): number {
    return this.wanted.channel.size + this.wanted.pattern.size + this.wanted.shard.size;
  }

  get confirmedCount(): number {
    return this.confirmed.channel.size + this.confirmed.pattern.size + this.confirmed.shard.size;
  }

  /** Whether Redis acknowledged `name` on the current socket. */
  isConfirmed(kind: SubscriptionKind, name: string): boolean {
    return this.confirmed[kind].has(name);
  }

  /** The acknowledged names of one kind. */
  confirmedOf(kind: SubscriptionKind): ReadonlySet<string> {
    return this.confirmed[kind];
  }

  /** Redis dropped `name` on its own (a shard channel whose slot moved away): wanted, no longer acknowledged. */
  unconfirm(kind: SubscriptionKind, name: string): void {
    this.confirmed[kind].delete(name);
  }

  get complete(): boolean {
    return this.confirmedCount === this.expectedCount;
  }

  missing(): string[] {
    const out: string[] = [];
    for (const kind of KINDS) {
      for (const name of this.wanted[kind]) if (!this.confirmed[kind].has(name)) out.push(`${kind}:${name}`);
    }
    return out;
  }

  /** A new socket starts with no subscriptions at all. */
  reset(): void {
    for (const kind of KINDS) this.confirmed[kind].clear();
  }

  /** The same wanted list (shared), nothing confirmed: for a replacement socket subscribed beside the current one. */
  fork(): SubscriptionRegistry {
    return new SubscriptionRegistry(this.wanted);
  }

  /** Takes over what `fork` confirmed on its socket, once that socket replaces the current one. */
  adopt(fork: SubscriptionRegistry): void {
    this.reset();
    for (const kind of KINDS) for (const name of fork.confirmed[kind]) this.confirmed[kind].add(name);
  }

  /** Whether this registry's socket has at least everything `other`'s socket has. */
  covers(other: SubscriptionRegistry): boolean {
    for (const kind of KINDS) {
      for (const name of other.confirmed[kind]) if (!this.confirmed[kind].has(name)) return false;
    }
    return true;
  }

  /**
   * (P)SUBSCRIBEs everything not yet confirmed and waits for Redis to acknowledge each.
   * All batches are sent at once rather than one round trip after another: ioredis writes them
   * back to back and settles each command once Redis acknowledged every name in it (replies
   * arrive in order). A refused batch is retried name by name so one forbidden channel cannot
   * hide the rest. `isCurrent` turns false when the socket was replaced meanwhile: results are
   * then dropped. Shard channels are batched per hash slot: one SSUBSCRIBE may not span slots.
   */
  async subscribeMissing(redis: Redis, isCurrent: () => boolean): Promise<SubscribeResult> {
    const result: SubscribeResult = { confirmed: 0, failed: [] };
    const batches: Array<Promise<void>> = [];
    for (const kind of KINDS) {
      const todo = [...this.wanted[kind]].filter((name) => !this.confirmed[kind].has(name));
      for (const group of kind === 'shard' ? groupBySlot(todo) : [todo]) {
        for (let i = 0; i < group.length; i += BATCH) {
          batches.push(this.subscribeBatch(redis, kind, group.slice(i, i + BATCH), isCurrent, result));
        }
      }
    }
    await Promise.all(batches);
    return result;
  }

  private async subscribeBatch(redis: Redis, kind: SubscriptionKind, batch: string[], isCurrent: () => boolean, result: SubscribeResult): Promise<void> {
    const error = await this.issue(redis, kind, batch);
    if (!isCurrent()) return;
    if (!error) return this.confirm(kind, batch, result);
    const singles = await Promise.all(batch.map((name) => this.issue(redis, kind, [name])));
    if (!isCurrent()) return;
    singles.forEach((single, i) => {
      if (single) result.failed.push({ kind, name: batch[i]!, error: single });
      else this.confirm(kind, [batch[i]!], result);
    });
  }

  private confirm(kind: SubscriptionKind, names: string[], result: SubscribeResult): void {
    for (const name of names) this.confirmed[kind].add(name);
    result.confirmed += names.length;
  }

  private async issue(redis: Redis, kind: SubscriptionKind, names: string[]): Promise<string | undefined> {
    try {
      await (kind === 'channel' ? redis.subscribe(...names) : kind === 'pattern' ? redis.psubscribe(...names) : redis.ssubscribe(...names));
      return undefined;
    } catch (err) {
      return errorText(err);
    }
  }
}

function groupBySlot(names: string[]): string[][] {
  const groups = new Map<number, string[]>();
  for (const name of names) {
    const slot = keySlot(name);
    const group = groups.get(slot);
    if (group) group.push(name);
    else groups.set(slot, [name]);
  }
  return [...groups.values()];
}
