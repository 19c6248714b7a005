import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { promisify } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { closeClient } from './clients.js';
import { startRedis, type RedisServerHandle } from './redis.js';
import { delay, waitFor } from './wait.js';

/**
 * A real Redis Cluster for tests and the bench: 3 primaries + 3 replicas (by default), each a
 * redis-server from redis.ts (own temp dir, watched by the reaper: nothing survives a crash of the
 * test process), joined with `redis-cli --cluster create`.
 *
 * Every fault method waits on real conditions (polling with deadlines): a promotion is the replica
 * answering ROLE `master`; "stable" is every running node answering `cluster_state:ok`, every node
 * agreeing on who owns every slot and who replicates whom, no running node flagged failing by
 * anyone, and every replica's link to its primary up.
 *
 * The harness talks to each node over ONE persistent admin connection (name `cluster-harness`), so
 * its polling adds no connections to `INFO stats total_connections_received` (the bench counts
 * reconnect storms with it) except after a node restarts.
 */

export const CLUSTER_SLOTS = 16_384;
/** CLIENT SETNAME of the harness' admin connections (filter them out of CLIENT LIST). */
export const HARNESS_CLIENT_NAME = 'cluster-harness';

export type NodeRole = 'primary' | 'replica';
/** `running` answers; `paused` is SIGSTOPped (connections open, nothing answered); `killed` is gone. */
export type NodeState = 'running' | 'paused' | 'killed';

export interface ClusterNode {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Cluster bus port (`cluster-port`, chosen free, not port + 10000 which may exceed 65535). */
  readonly busPort: number;
  /** `127.0.0.1:port`, as in MOVED replies. */
  readonly address: string;
  /** Cluster node id (CLUSTER MYID), stable across restarts (nodes.conf is kept). */
  readonly id: string;
  readonly pid: number | undefined;
  /** Role as last observed by the harness (refreshed by every wait for stability). */
  readonly role: NodeRole;
  readonly state: NodeState;
  /** The underlying redis-server handle (log dir, raw kill/start): prefer the cluster's methods. */
  readonly server: RedisServerHandle;
  /** One command on the harness' admin connection to this node (rejects after 2 s without answer). */
  command(...args: (string | number)[]): Promise<unknown>;
}

/** One line of CLUSTER NODES, as seen by one node. */
export interface ClusterNodesEntry {
  id: string;
  port: number;
  busPort: number;
  flags: string[];
  role: NodeRole;
  /** Primary's id for a replica, undefined for a primary. */
  primaryId: string | undefined;
  configEpoch: number;
  linkState: string;
  /** Owned slot ranges, inclusive. */
  slots: [number, number][];
  /** Only on the `myself` line: slot -> node id it is migrating to / importing from. */
  migrating: Map<number, string>;
  importing: Map<number, string>;
}

export interface StartClusterOptions {
  /** Number of primaries (default 3); each gets `replicasPerPrimary` replicas (default 1). */
  primaries?: number;
  replicasPerPrimary?: number;
  /**
   * `cluster-node-timeout` in ms (default 1 000): a failed or hung primary is replaced after about
   * this plus the election (~0.5-1 s). Shorter makes a busy 2-core machine flap (a node stalled
   * longer than this is declared failing).
   */
  nodeTimeoutMs?: number;
  /** Extra redis-server options for every node (see StartRedisOptions.config). */
  config?: Record<string, string | number>;
  /** Deadline for the whole start, cluster formed and stable (default 60 000 ms). */
  startTimeoutMs?: number;
}

export interface WaitStableOptions {
  /** Default 30 000 ms. */
  timeoutMs?: number;
  /** Also require every replica's replication link up (default true). */
  replication?: boolean;
}

export interface Promotion {
  /** The primary that owned the slot before the fault. */
  oldOwner: ClusterNode;
  /** The node that owns the slot afterwards (the cluster agrees). */
  newOwner: ClusterNode;
  /** Date.now() when the fault was injected (signal sent / command answered). */
  faultAt: number;
  /** Date.now() when the new owner was first seen answering ROLE `master` (polled every 10 ms). */
  promotedAt: number;
}

export interface PausedPrimary {
  readonly node: ClusterNode;
  /** Its replica (the candidate for an election). */
  readonly replica: ClusterNode;
  /** Date.now() when SIGSTOP was sent. */
  readonly pausedAt: number;
  /**
   * Waits until the replica has been elected in the paused node's place (the pause must outlast
   * the node timeout) and the other nodes agree; resolves with the promotion time.
   */
  waitForPromotion(options?: { timeoutMs?: number }): Promise<{ newOwner: ClusterNode; promotedAt: number }>;
  /**
   * SIGCONT, then waits until the cluster is stable again (an old primary that was replaced
   * rejoins as a replica of its successor). `electedMeanwhile` tells whether the replica took over.
   */
  resume(): Promise<{ resumedAt: number; electedMeanwhile: boolean; owner: ClusterNode }>;
}

export type MigrationOrder = 'target-first' | 'source-first';

export interface MigrateSlotOptions {
  /** The primary that receives the slot. */
  to: ClusterNode;
  /**
   * Which of the two nodes gets `CLUSTER SETSLOT <slot> NODE <target>` first (default
   * 'target-first': the destination claims the slot before the source stops serving it). The
   * other primaries are told last.
   */
  order?: MigrationOrder;
  /**
   * Source-first only: tell the destination this many ms after the source (the window in which
   * the source already redirects to a destination that does not claim the slot yet).
   */
  destinationDelayMs?: number;
  /** Keys moved per MIGRATE (default 100). */
  batchSize?: number;
}

export interface SlotMigration {
  slot: number;
  from: ClusterNode;
  to: ClusterNode;
  keysMoved: number;
  /** Date.now() right after each node answered its SETSLOT NODE. */
  sourceToldAt: number;
  destinationToldAt: number;
  /** Date.now() when all nodes agreed on the new owner (and the cluster was stable). */
  agreedAt: number;
}

export interface RedisCluster {
  /** One address per running primary (as last observed), as given to ioredis `new Cluster(seeds)`. */
  readonly seeds: { host: string; port: number }[];
  /** All nodes, in start order (roles change with faults: see ClusterNode.role). */
  readonly nodes: readonly ClusterNode[];
  readonly nodeTimeoutMs: number;
  /**
   * Hash slot of a channel or key (cluster-key-slot, as ioredis computes it; honours {tags}). It
   * differs from Redis for an empty tag followed by another (`foo{}{bar}`): ask CLUSTER KEYSLOT there.
   */
  slotOf(channel: string | Buffer): number;
  /** The primary owning the slot of `channel` (or `slot`), once all running nodes agree on it. */
  ownerOf(channelOrSlot: string | Buffer | number): Promise<ClusterNode>;
  /** The (first) replica of `primary` as the running nodes agree. Rejects if it has none. */
  replicaOf(primary: ClusterNode): Promise<ClusterNode>;
  /** All primaries, as the running nodes agree. */
  primaries(): Promise<ClusterNode[]>;
  /** A channel name `${prefix}:{n}` (hash-tagged, n counting up) whose slot `owner` owns; distinct per call. */
  channelOwnedBy(owner: ClusterNode, prefix?: string): Promise<string>;
  /** CLUSTER NODES parsed, as `from` sees it (default: the first running node). */
  clusterNodes(from?: ClusterNode): Promise<ClusterNodesEntry[]>;
  /** Polls until the cluster is stable (see the module comment). */
  waitStable(options?: WaitStableOptions): Promise<void>;
  /** SIGKILL the owner of the channel's slot; waits for its replica's promotion and stability. */
  killPrimaryOf(channel: string | Buffer, options?: { timeoutMs?: number }): Promise<Promotion>;
  /** Starts a killed node again (same port, same nodes.conf); waits until it rejoined and the cluster is stable. */
  restartNode(node: ClusterNode, options?: { timeoutMs?: number }): Promise<void>;
  /** `CLUSTER FAILOVER` on the owner's replica; waits until promoted and stable (times are those of the attempt that stuck). */
  failoverOf(channel: string | Buffer, options?: { timeoutMs?: number }): Promise<Promotion>;
  /** SIGSTOP the owner of the channel's slot (see PausedPrimary). */
  pausePrimaryOf(channel: string | Buffer): Promise<PausedPrimary>;
  /** The slot migration protocol (IMPORTING, MIGRATING, MIGRATE, SETSLOT NODE); waits until all nodes agree. */
  migrateSlot(slot: number, options: MigrateSlotOptions): Promise<SlotMigration>;
  /**
   * `INFO` field values summed over the running nodes (e.g. total_connections_received). Two sums
   * compare only while the same nodes run (a killed node's counters leave the sum): see infoByNode.
   */
  sumInfo(section: string, fields: string[]): Promise<Record<string, number>>;
  /** `INFO` field values of each running node. */
  infoByNode(section: string, fields: string[]): Promise<Map<ClusterNode, Record<string, number>>>;
  /** Stops every node (SIGCONT first if paused) and removes their temp dirs. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1' as const;
const DEFAULT_NODE_TIMEOUT_MS = 1_000;
const ADMIN_COMMAND_TIMEOUT_MS = 2_000;
const PROMOTION_POLL_MS = 10;
const FAILING_FLAGS = new Set(['fail', 'fail?', 'handshake', 'noaddr']);

const execFileAsync = promisify(execFile);

class Node implements ClusterNode {
  readonly host = HOST;
  readonly address: string;
  id = '';
  role: NodeRole = 'primary';
  state: NodeState = 'running';
  private admin: Redis | undefined;

  constructor(
    readonly server: RedisServerHandle,
    readonly busPort: number,
  ) {
    this.address = `${HOST}:${server.port}`;
  }

  get port(): number {
    return this.server.port;
  }

  get pid(): number | undefined {
    return this.server.pid;
  }

  command(...args: (string | number)[]): Promise<unknown> {
    const [name, ...rest] = args;
    if (name === undefined) return Promise.reject(new Error('command(): no command given'));
    return this.connection().call(String(name), rest);
  }

  private connection(): Redis {
    if (this.admin === undefined || this.admin.status === 'end' || this.admin.status === 'close') {
      const admin = new Redis({
        host: HOST,
        port: this.port,
        connectionName: HARNESS_CLIENT_NAME,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
        enableReadyCheck: false,
        disableClientInfo: true,
        commandTimeout: ADMIN_COMMAND_TIMEOUT_MS,
        connectTimeout: ADMIN_COMMAND_TIMEOUT_MS,
      });
      admin.on('error', () => {
        /* surfaced through the rejected command */
      });
      this.admin = admin;
    }
    return this.admin;
  }

  async closeAdmin(): Promise<void> {
    const admin = this.admin;
    this.admin = undefined;
    if (admin) await closeClient(admin);
  }
}

interface Observation {
  /** Per running node: its CLUSTER NODES. */
  views: Map<Node, ClusterNodesEntry[]>;
}

/** What all running nodes agree on; undefined fields never happen in an agreed observation. */
interface Agreement {
  /** slot -> owner node id */
  owners: string[];
  /** node id -> entry (from the common view) */
  entries: Map<string, ClusterNodesEntry>;
}

export async function startCluster(options: StartClusterOptions = {}): Promise<RedisCluster> {
  const primaries = options.primaries ?? 3;
  const replicas = options.replicasPerPrimary ?? 1;
  const count = primaries * (1 + replicas);
  const nodeTimeoutMs = options.nodeTimeoutMs ?? DEFAULT_NODE_TIMEOUT_MS;
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  for (let attempt = 1; ; attempt++) {
    // Client and bus ports reserved together so none of them collides with another.
    const ports = await distinctFreePorts(count * 2);
    const started = await Promise.allSettled(
      Array.from({ length: count }, (_, i) =>
        startRedis({
          port: ports[2 * i]!,
          config: {
            'cluster-enabled': 'yes',
            'cluster-config-file': 'nodes.conf',
            'cluster-node-timeout': nodeTimeoutMs,
            'cluster-port': ports[2 * i + 1]!,
            // A restarted node resyncs at once (Redis 7.0 waits 5 s for more diskless-sync replicas).
            'repl-diskless-sync-delay': 0,
            ...options.config,
          },
        }).then((server) => new Node(server, ports[2 * i + 1]!)),
      ),
    );
    const nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(nodes.map((n) => n.server.stop()));
      // A port taken between the reservation and the bind: try again with other ports.
      if (attempt < 3 && Date.now() < deadline && /already in use|exited before/i.test(String(failed.reason))) continue;
      throw failed.reason;
    }
    const cluster = new Cluster(nodes, nodeTimeoutMs);
    try {
      await cluster.create(replicas, deadline);
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }
}

class Cluster implements RedisCluster {
  private stopping: Promise<void> | undefined;

  constructor(
    readonly nodes: Node[],
    readonly nodeTimeoutMs: number,
  ) {}

  get seeds(): { host: string; port: number }[] {
    return this.nodes.filter((n) => n.role === 'primary' && n.state === 'running').map((n) => ({ host: HOST, port: n.port }));
  }

  async create(replicas: number, deadline: number): Promise<void> {
    const args = ['--cluster', 'create', ...this.nodes.map((n) => n.address), '--cluster-replicas', String(replicas), '--cluster-yes'];
    try {
      await execFileAsync('redis-cli', args, { timeout: Math.max(deadline - Date.now(), 1_000), killSignal: 'SIGKILL' });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`redis-cli --cluster create failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
    }
    await Promise.all(
      this.nodes.map(async (n) => {
        n.id = String(await n.command('CLUSTER', 'MYID'));
      }),
    );
    await this.waitStable({ timeoutMs: Math.max(deadline - Date.now(), 1_000) });
  }

  slotOf(channel: string | Buffer): number {
    return calculateSlot(channel);
  }

  private running(): Node[] {
    return this.nodes.filter((n) => n.state === 'running');
  }

  private byId(id: string): Node {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`unknown cluster node id ${id}`);
    return node;
  }

  private own(node: ClusterNode): Node {
    const own = this.nodes.find((n) => n === node || n.port === node.port);
    if (!own) throw new Error(`${node.address} is not a node of this cluster`);
    return own;
  }

  async clusterNodes(from?: ClusterNode): Promise<ClusterNodesEntry[]> {
    const node = from ? this.own(from) : this.running()[0];
    if (!node) throw new Error('clusterNodes(): no running node');
    return parseClusterNodes(String(await node.command('CLUSTER', 'NODES')));
  }

  private async observe(): Promise<Observation> {
    const views = new Map<Node, ClusterNodesEntry[]>();
    await Promise.all(
      this.running().map(async (n) => {
        views.set(n, await this.clusterNodes(n));
      }),
    );
    return { views };
  }

  /** The agreement of the running nodes, or a string saying why there is none yet. */
  private agreement(obs: Observation): Agreement | string {
    const runningIds = new Set(this.running().map((n) => n.id));
    let signature: string | undefined;
    let first: ClusterNodesEntry[] | undefined;
    for (const [node, view] of obs.views) {
      const me = view.find((e) => e.flags.includes('myself'));
      if (me && (me.migrating.size > 0 || me.importing.size > 0)) return `${node.address} has a slot migrating/importing`;
      for (const e of view) {
        if (runningIds.has(e.id) && e.flags.some((f) => FAILING_FLAGS.has(f))) {
          return `${node.address} flags ${e.port} ${e.flags.join(',')}`;
        }
      }
      const covered = view
        .filter((e) => runningIds.has(e.id) && e.role === 'primary')
        .reduce((sum, e) => sum + e.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
      if (covered !== CLUSTER_SLOTS) return `${node.address} sees ${covered} slots on running primaries`;
      const sig = view
        .filter((e) => runningIds.has(e.id))
        .map((e) => `${e.id} ${e.role} ${e.primaryId ?? '-'} ${e.slots.map(([a, b]) => `${a}-${b}`).join(',')}`)
        .sort()
        .join('\n');
      if (signature === undefined) {
        signature = sig;
        first = view;
      } else if (sig !== signature) {
        return `${node.address} disagrees:\n${sig}\nvs\n${signature}`;
      }
    }
    if (!first) return 'no running node';
    const owners = new Array<string>(CLUSTER_SLOTS);
    const entries = new Map<string, ClusterNodesEntry>();
    for (const e of first) {
      if (!runningIds.has(e.id)) continue;
      entries.set(e.id, e);
      for (const [a, b] of e.slots) for (let s = a; s <= b; s++) owners[s] = e.id;
    }
    return { owners, entries };
  }

  /** Polls until the running nodes agree (not necessarily `cluster_state:ok`); refreshes roles. */
  private async agreed(timeoutMs = 30_000): Promise<Agreement> {
    const agreement = await waitFor(
      async () => {
        const a = this.agreement(await this.observe());
        if (typeof a === 'string') throw new Error(a);
        return a;
      },
      { timeoutMs, intervalMs: 25, message: 'cluster nodes do not agree' },
    );
    for (const [id, e] of agreement.entries) this.byId(id).role = e.role;
    return agreement;
  }

  async waitStable(options: WaitStableOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const replication = options.replication ?? true;
    const running = this.running();
    await waitFor(
      async () => {
        const states = await Promise.all(
          running.map(async (n) => [n, /cluster_state:(\w+)/.exec(String(await n.command('CLUSTER', 'INFO')))?.[1]] as const),
        );
        const bad = states.find(([, s]) => s !== 'ok');
        if (bad) throw new Error(`${bad[0].address} cluster_state:${bad[1]}`);
        const a = this.agreement(await this.observe());
        if (typeof a === 'string') throw new Error(a);
        for (const [id, e] of a.entries) this.byId(id).role = e.role;
        if (replication) {
          for (const n of running.filter((r) => r.role === 'replica')) {
            const info = String(await n.command('INFO', 'replication'));
            if (!/master_link_status:up/.test(info)) throw new Error(`${n.address}: replication link not up`);
          }
        }
        return true;
      },
      { timeoutMs, intervalMs: 25, message: 'cluster not stable' },
    );
  }

  async ownerOf(channelOrSlot: string | Buffer | number): Promise<ClusterNode> {
    const slot = typeof channelOrSlot === 'number' ? channelOrSlot : this.slotOf(channelOrSlot);
    const owner = (await this.agreed()).owners[slot];
    if (owner === undefined) throw new Error(`slot ${slot} has no owner`);
    return this.byId(owner);
  }

  async replicaOf(primary: ClusterNode): Promise<ClusterNode> {
    const p = this.own(primary);
    const agreement = await this.agreed();
    const replica = [...agreement.entries.values()].find((e) => e.primaryId === p.id);
    if (!replica) throw new Error(`${p.address} has no running replica`);
    return this.byId(replica.id);
  }

  async primaries(): Promise<ClusterNode[]> {
    const agreement = await this.agreed();
    return [...agreement.entries.values()].filter((e) => e.role === 'primary').map((e) => this.byId(e.id));
  }

  private channelCounter = 0;

  async channelOwnedBy(owner: ClusterNode, prefix = 'ch'): Promise<string> {
    const owners = (await this.agreed()).owners;
    const id = this.own(owner).id;
    for (;;) {
      const channel = `${prefix}:{${this.channelCounter++}}`;
      if (owners[this.slotOf(channel)] === id) return channel;
    }
  }

  /** Polls ROLE on `node` every 10 ms until it answers master; returns when it was first seen. */
  private async waitPromoted(node: Node, timeoutMs: number): Promise<number> {
    await waitFor(async () => ((await node.command('ROLE')) as unknown[])[0] === 'master', {
      timeoutMs,
      intervalMs: PROMOTION_POLL_MS,
      message: `${node.address} not promoted`,
    });
    return Date.now();
  }

  private async ownerAndReplica(channel: string | Buffer): Promise<{ owner: Node; replica: Node }> {
    const owner = this.own(await this.ownerOf(channel));
    const replica = this.own(await this.replicaOf(owner));
    return { owner, replica };
  }

  async killPrimaryOf(channel: string | Buffer, options: { timeoutMs?: number } = {}): Promise<Promotion> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const { owner, replica } = await this.ownerAndReplica(channel);
    await owner.closeAdmin();
    await owner.server.kill('SIGKILL');
    const faultAt = Date.now();
    owner.state = 'killed';
    const promotedAt = await this.waitPromoted(replica, timeoutMs);
    await this.waitStable({ timeoutMs });
    return { oldOwner: owner, newOwner: await this.expectOwner(channel, replica), faultAt, promotedAt };
  }

  async restartNode(node: ClusterNode, options: { timeoutMs?: number } = {}): Promise<void> {
    const n = this.own(node);
    if (n.state === 'paused') throw new Error(`${n.address} is paused: resume() it instead`);
    await n.server.start();
    n.state = 'running';
    await this.waitStable({ timeoutMs: options.timeoutMs ?? 30_000 });
  }

  async failoverOf(channel: string | Buffer, options: { timeoutMs?: number } = {}): Promise<Promotion> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    const { owner, replica } = await this.ownerAndReplica(channel);
    // Redis 7.0: a replica asked for a manual failover within 2 x max(2 x node timeout, 2 s) of an
    // election it won reuses that election's votes and epoch ("Failover election won" without a new
    // election), answers ROLE master for a moment, then yields to the higher epoch and is a replica
    // again. Seen after kill -9 + restart + failovers of one shard in a row: asked again until it sticks.
    for (;;) {
      await replica.command('CLUSTER', 'FAILOVER');
      const faultAt = Date.now();
      const promotedAt = await this.waitPromoted(replica, Math.max(deadline - Date.now(), 1));
      await this.waitStable({ timeoutMs: Math.max(deadline - Date.now(), 1) });
      if ((await this.ownerOf(channel)) === replica) return { oldOwner: owner, newOwner: replica, faultAt, promotedAt };
      if (Date.now() >= deadline) await this.expectOwner(channel, replica);
    }
  }

  async pausePrimaryOf(channel: string | Buffer): Promise<PausedPrimary> {
    const { owner, replica } = await this.ownerAndReplica(channel);
    await owner.server.kill('SIGSTOP');
    const pausedAt = Date.now();
    owner.state = 'paused';
    let promoted: { newOwner: ClusterNode; promotedAt: number } | undefined;
    let resumed: Promise<{ resumedAt: number; electedMeanwhile: boolean; owner: ClusterNode }> | undefined;
    return {
      node: owner,
      replica,
      pausedAt,
      waitForPromotion: async ({ timeoutMs = 30_000 } = {}) => {
        if (!promoted) {
          const promotedAt = await this.waitPromoted(replica, timeoutMs);
          await this.agreed(timeoutMs);
          promoted = { newOwner: await this.expectOwner(channel, replica), promotedAt };
        }
        return promoted;
      },
      resume: () =>
        (resumed ??= (async () => {
          await owner.server.kill('SIGCONT');
          const resumedAt = Date.now();
          owner.state = 'running';
          await this.waitStable();
          const now = await this.ownerOf(channel);
          return { resumedAt, electedMeanwhile: now !== owner, owner: now };
        })()),
    };
  }

  async migrateSlot(slot: number, options: MigrateSlotOptions): Promise<SlotMigration> {
    const order = options.order ?? 'target-first';
    const destinationDelayMs = options.destinationDelayMs ?? 0;
    if (destinationDelayMs > 0 && order !== 'source-first') {
      throw new Error('migrateSlot(): destinationDelayMs needs order "source-first"');
    }
    const batchSize = options.batchSize ?? 100;
    const from = this.own(await this.ownerOf(slot));
    const to = this.own(options.to);
    if (to === from) throw new Error(`migrateSlot(): slot ${slot} is already on ${to.address}`);
    if (to.role !== 'primary') throw new Error(`migrateSlot(): ${to.address} is not a primary`);
    await to.command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
    await from.command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
    let keysMoved = 0;
    for (;;) {
      const keys = (await from.command('CLUSTER', 'GETKEYSINSLOT', slot, batchSize)) as string[];
      if (keys.length === 0) break;
      await from.command('MIGRATE', HOST, to.port, '', 0, 5_000, 'REPLACE', 'KEYS', ...keys);
      keysMoved += keys.length;
    }
    let sourceToldAt = 0;
    let destinationToldAt = 0;
    const tellSource = async (): Promise<void> => {
      await from.command('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
      sourceToldAt = Date.now();
    };
    const tellDestination = async (): Promise<void> => {
      await to.command('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
      destinationToldAt = Date.now();
    };
    if (order === 'target-first') {
      await tellDestination();
      await tellSource();
    } else {
      await tellSource();
      if (destinationDelayMs > 0) await delay(destinationDelayMs);
      await tellDestination();
    }
    // The other primaries (SETSLOT is refused by replicas: they learn it from their primary's gossip).
    const others = (await this.primariesNow()).filter((p) => p !== from && p !== to);
    await Promise.all(others.map((p) => p.command('CLUSTER', 'SETSLOT', slot, 'NODE', to.id)));
    await this.waitStable();
    const owner = await this.ownerOf(slot);
    if (owner !== to) throw new Error(`migrateSlot(): slot ${slot} ended on ${owner.address}, not ${to.address}`);
    return { slot, from, to, keysMoved, sourceToldAt, destinationToldAt, agreedAt: Date.now() };
  }

  /** Running primaries as last observed (no agreement needed: used mid-migration). */
  private primariesNow(): Node[] {
    return this.running().filter((n) => n.role === 'primary');
  }

  private async expectOwner(channel: string | Buffer, expected: Node): Promise<ClusterNode> {
    const owner = await this.ownerOf(channel);
    if (owner !== expected) throw new Error(`slot ${this.slotOf(channel)} owned by ${owner.address}, expected ${expected.address}`);
    return owner;
  }

  async sumInfo(section: string, fields: string[]): Promise<Record<string, number>> {
    const sums: Record<string, number> = Object.fromEntries(fields.map((f) => [f, 0]));
    for (const values of (await this.infoByNode(section, fields)).values()) {
      for (const f of fields) sums[f]! += values[f]!;
    }
    return sums;
  }

  async infoByNode(section: string, fields: string[]): Promise<Map<ClusterNode, Record<string, number>>> {
    const byNode = new Map<ClusterNode, Record<string, number>>();
    await Promise.all(
      this.running().map(async (n) => {
        const info = String(await n.command('INFO', section));
        byNode.set(n, Object.fromEntries(fields.map((f) => [f, Number(new RegExp(`^${f}:(\\S+)`, 'm').exec(info)?.[1] ?? 0)])));
      }),
    );
    return byNode;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all(this.nodes.map((n) => n.closeAdmin()));
      // RedisServerHandle.stop() sends SIGCONT too, so a paused node stops as well.
      await Promise.all(this.nodes.map((n) => n.server.stop()));
      for (const n of this.nodes) n.state = 'killed';
    })();
    return this.stopping;
  }
}

/** Parses CLUSTER NODES (Redis 7: `id ip:port@cport[,hostname] flags master ping pong epoch link slot...`). */
export function parseClusterNodes(text: string): ClusterNodesEntry[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((line) => {
      const [id = '', addr = '', flags = '', master = '-', , , epoch = '0', link = '', ...slotFields] = line.split(' ');
      const m = /:(\d+)@(\d+)/.exec(addr);
      const flagList = flags.split(',');
      const entry: ClusterNodesEntry = {
        id,
        port: Number(m?.[1] ?? 0),
        busPort: Number(m?.[2] ?? 0),
        flags: flagList,
        role: flagList.includes('slave') ? 'replica' : 'primary',
        primaryId: master === '-' ? undefined : master,
        configEpoch: Number(epoch),
        linkState: link,
        slots: [],
        migrating: new Map(),
        importing: new Map(),
      };
      for (const f of slotFields) {
        const mig = /^\[(\d+)->-(\w+)\]$/.exec(f);
        const imp = /^\[(\d+)-<-(\w+)\]$/.exec(f);
        if (mig) entry.migrating.set(Number(mig[1]), mig[2]!);
        else if (imp) entry.importing.set(Number(imp[1]), imp[2]!);
        else {
          const [a, b] = f.split('-');
          entry.slots.push([Number(a), Number(b ?? a)]);
        }
      }
      return entry;
    });
}

/** `n` distinct free loopback ports, all held open at once while they are picked. */
async function distinctFreePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const server = createServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: HOST, port: 0, exclusive: true }, () => {
            const address = server.address();
            if (address === null || typeof address === 'string') reject(new Error('no port'));
            else resolve(address.port);
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
