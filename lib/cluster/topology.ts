import { Redis, type NatMap, type RedisOptions } from 'ioredis';
import { within } from '../within.js';
import { parseClusterNodes, resolveSlotMap, splitAddress, type NodeLine, type SlotMap } from './slot-map.js';

/**
 * `all`: every node we know of (something changed: a redirect, a lost shard). `open`: only the
 * primaries we hold a connection to (the periodic check: no connection is opened for it).
 */
export type ReadScope = 'all' | 'open';

/**
 * The cluster's slot map, read from every node we know of (not one random node: see
 * resolveSlotMap): over the connections we already hold to primaries, and over short-lived ones to
 * the other nodes, so no node needs a standing connection of ours just for this. Refreshes are
 * serialized but never merged away: a refresh asked for while one is running gets one of its own,
 * started after it, so news that arrived meanwhile is not missed.
 */
export class ClusterTopology {
  /** Every address ever learnt (seeds included): a node unknown to one view may still answer. */
  private readonly known = new Set<string>();
  private running?: Promise<SlotMap | undefined>;
  private queued?: Promise<SlotMap | undefined>;
  private queuedScope?: ReadScope;
  private readonly probes = new Set<Redis>();
  private closed = false;
  refreshes = 0;
  lastRefreshAt: number | null = null;

  constructor(
    seeds: string[],
    private readonly redisOptions: RedisOptions,
    private readonly timeoutMs: number,
    private readonly connectionName: string,
    /** Ready connections we hold, by node address. */
    private readonly open: () => Map<string, Redis>,
    private readonly natMap?: NatMap,
  ) {
    for (const seed of seeds) this.known.add(seed);
  }

  /** Resolves to the map from the views of every node that answered; `undefined` when none did. */
  refresh(scope: ReadScope = 'all'): Promise<SlotMap | undefined> {
    if (!this.running) {
      this.running = this.read(scope).finally(() => (this.running = undefined));
      return this.running;
    }
    this.queuedScope = this.queuedScope === 'all' || scope === 'all' ? 'all' : 'open';
    this.queued ??= this.running.then(() => {
      const queuedScope = this.queuedScope;
      this.queued = undefined;
      this.queuedScope = undefined;
      return this.refresh(queuedScope);
    });
    return this.queued;
  }

  close(): void {
    this.closed = true;
    for (const redis of this.probes) destroy(redis);
  }

  private async read(scope: ReadScope): Promise<SlotMap | undefined> {
    if (this.closed) return undefined;
    const open = this.open();
    const views = await this.gather(scope === 'open' && open.size > 0 ? [...open.keys()] : [...this.known], open);
    if (this.closed || views.length === 0) return undefined;
    const map = resolveSlotMap(views);
    for (const address of map.addresses) this.known.add(address);
    this.refreshes++;
    this.lastRefreshAt = Date.now();
    return map;
  }

  /**
   * The views of every node that answers. Once one has answered, the others get a little longer
   * (4× the first answer's time, at least 200 ms) but not the whole timeout: a dead or hung node
   * must not hold back the news that the others already have (what it would say of itself, the
   * others' views say too, at its last known config epoch).
   */
  private gather(addresses: string[], open: Map<string, Redis>): Promise<NodeLine[][]> {
    const startedAt = Date.now();
    const views: NodeLine[][] = [];
    return new Promise((resolve) => {
      let pending = addresses.length;
      let grace: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(grace);
        resolve(views);
      };
      if (pending === 0) return finish();
      for (const address of addresses) {
        const connection = open.get(address);
        void (connection ? this.viewOver(connection, address) : this.viewOf(address)).then((view) => {
          if (view) views.push(view);
          if (--pending === 0) return finish();
          if (view && views.length === 1) grace = setTimeout(finish, Math.max(200, 4 * (Date.now() - startedAt)));
        });
      }
    });
  }

  /** `CLUSTER NODES` over a connection we hold anyway. */
  private async viewOver(redis: Redis, address: string): Promise<NodeLine[] | undefined> {
    const text = await within((redis.cluster('NODES') as Promise<string>).catch(() => undefined), this.timeoutMs);
    return text === undefined ? undefined : this.parse(text, address);
  }

  /** `CLUSTER NODES` of one node, with addresses translated by `natMap`; `undefined` if it did not answer in time. */
  private async viewOf(address: string): Promise<NodeLine[] | undefined> {
    const [host, port] = splitAddress(address);
    const redis = new Redis({
      ...this.redisOptions,
      host,
      port,
      connectionName: this.connectionName,
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      connectTimeout: this.timeoutMs,
      disconnectTimeout: 0,
    });
    redis.on('error', () => undefined);
    this.probes.add(redis);
    try {
      const nodes = redis.connect().then(() => redis.cluster('NODES') as Promise<string>);
      const text = await within(nodes.catch(() => undefined), this.timeoutMs);
      return text === undefined ? undefined : this.parse(text, address);
    } catch {
      return undefined;
    } finally {
      this.probes.delete(redis);
      destroy(redis);
    }
  }

  private parse(text: string, address: string): NodeLine[] {
    return parseClusterNodes(text, address).map((line) => ({ ...line, address: this.translate(line.address) }));
  }

  private translate(address: string): string {
    const nat = this.natMap;
    if (!nat) return address;
    const mapped = typeof nat === 'function' ? nat(address) : nat[address];
    return mapped ? `${mapped.host}:${mapped.port}` : address;
  }
}

function destroy(redis: Redis): void {
  redis.disconnect();
  redis.stream?.destroy();
}
