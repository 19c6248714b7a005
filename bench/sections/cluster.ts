/**
 * Redis Cluster: sharded pub/sub through faults, and throughput sharded vs standalone vs classic.
 *
 * Faults: a subscriber contender (a factory, see CLUSTER_CONTENDERS) subscribes to channels spread
 * over the three shards of a real 3+3 cluster (test/harness/cluster.ts); a publisher process sends
 * ~1,000 sequence-numbered SPUBLISHes per second round-robin over them; then one fault hits the
 * shard of the first channel. Per trial: time to handling again on every affected channel (from
 * the fault, and from the moment a primary owned the slot again), lost and duplicated messages,
 * whether it stayed deaf, and connection attempts per second during the outage.
 *
 * The subscriber runs in this process: its connection attempts are counted by wrapping
 * `net.createConnection`, which ioredis' connector calls for every attempt (refused ones
 * included, which no Redis node ever sees). `INFO stats total_connections_received` deltas summed
 * over the nodes are reported too (they include the publisher's reconnects).
 */
import net from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { startCluster, type ClusterNode, type RedisCluster } from '../../test/harness/cluster.js';
import { startRedis } from '../../test/harness/redis.js';
import { delay } from '../../test/harness/wait.js';
import { ALL_CPUS, pin } from '../support/affinity.js';
import { fmtInt, rotate, type BenchContext } from '../support/context.js';
import { nowNs } from '../support/ipc.js';
import { median } from '../support/stats.js';
import { Worker } from '../support/worker.js';
import type { ClusterPublisherKind } from '../workers/cluster-publisher.js';

export const CLUSTER_FAULTS = ['kill', 'failover', 'stall', 'migrate-target-first', 'migrate-source-first', 'migrate-destination-late'] as const;
export type ClusterFault = (typeof CLUSTER_FAULTS)[number];

/** Publisher rate, all channels together. */
const RATE = 1_000;
/** Channels per shard (all three shards get some; the fault hits the first channel's shard). */
const CHANNELS_PER_SHARD = 2;
/** Primary frozen this long (longer than the node timeout: the cluster elects its replica meanwhile). */
const STALL_MS = 10_000;
/** Destination told this long after the source (migrate-destination-late). */
const DESTINATION_DELAY_MS = 1_500;
/** Deaf: an affected channel still has nothing handled this long after the cluster is stable again. */
const DEAF_AFTER_MS = 10_000;
/** After recovery: late deliveries come in before counting. */
const SETTLE_MS = 2_000;

/** A running subscriber of a contender. */
export interface ClusterSubscriber {
  close(): Promise<void>;
}

/** What the publisher sends on each channel (inside a Nest envelope). */
export interface SequencedData {
  seq: number;
  /** send time, CLOCK_MONOTONIC ns */
  t: number;
}

/**
 * A contender: `subscribe` starts a subscriber of `channels` on the cluster reachable at `seeds`
 * that calls `onMessage` with each message's data as it is handled, and resolves once it is
 * started; `publisher` is the kind of publisher process that sends to it.
 */
export interface ClusterContender {
  id: string;
  label: string;
  publisher: ClusterPublisherKind;
  subscribe(seeds: { host: string; port: number }[], channels: string[], onMessage: (channel: string, data: SequencedData) => void): Promise<ClusterSubscriber>;
}

/** ioredis 6 on its own: one Cluster with `shardedSubscribers`, one SSUBSCRIBE per channel; raw SPUBLISH. */
export const RAW_SHARDED: ClusterContender = {
  id: 'raw-sharded',
  label: 'raw ioredis 6 Cluster { shardedSubscribers: true }',
  publisher: 'raw',
  async subscribe(seeds, channels, onMessage) {
    const cluster = new Cluster(seeds, { shardedSubscribers: true, lazyConnect: true });
    cluster.on('error', () => undefined);
    cluster.on('smessage', (channel: string, message: string) => onMessage(channel, (JSON.parse(message) as { data: SequencedData }).data));
    await cluster.connect();
    for (const channel of channels) await cluster.ssubscribe(channel);
    return {
      close: async () => {
        const ended = new Promise<void>((resolve) => cluster.once('end', () => resolve()));
        cluster.disconnect();
        await Promise.race([ended, delay(2_000)]);
      },
    };
  },
};

/**
 * This transport with defaults: `RedisPubSubServer({ cluster: { nodes } })` in a Nest microservice
 * with one `@EventPattern` handler per channel, fed by `RedisPubSubClient({ cluster: { nodes } }).emit()`.
 */
export const PUBSUB_CLUSTER: ClusterContender = {
  id: 'pubsub-cluster',
  label: 'RedisPubSubServer + RedisPubSubClient { cluster: { nodes } } (defaults)',
  publisher: 'pubsub',
  async subscribe(seeds, channels, onMessage) {
    const { startClusterApp } = await import('../support/cluster-app.js');
    return startClusterApp(seeds, channels, onMessage);
  },
};

export const CLUSTER_CONTENDERS: ClusterContender[] = [RAW_SHARDED, PUBSUB_CLUSTER];

export interface ClusterTrial {
  fault: ClusterFault;
  trial: number;
  contender: string;
  /** fault -> every affected channel handled a message published after a primary owned the slot again (ms); null: deaf */
  recoveryMs: number | null;
  /** a primary owns the slot again (promotion seen, or both migration nodes told) -> handling again (ms) */
  fromOwnerMs: number | null;
  /** fault -> a primary owns the slot again (ms) */
  ownerAfterMs: number;
  /** fault -> the cluster is stable again as all nodes see it (ms) */
  stableAfterMs: number;
  /** No message on some affected channel within DEAF_AFTER_MS of the cluster being stable again. */
  deaf: boolean;
  /** Acknowledged SPUBLISHes of the count window never handled / handled more than once. */
  lost: number;
  duplicates: number;
  published: number;
  /** When the lost messages were sent: first and last, ms from the fault (negative: before it). */
  lostSentMs: [number, number] | null;
  /** SPUBLISHes the publisher saw rejected during the trial. */
  publishRejected: number;
  /** stall only: whether the replica was elected while the primary was frozen */
  electedMeanwhile: boolean | null;
  /** Subscriber process: connection attempts per second from the fault until handling again (or stable + DEAF_AFTER_MS). */
  attemptsPerSecond: number;
  attempts: number;
  /** Connections accepted over the same period by the nodes that ran throughout (subscriber and publisher). */
  acceptedByCluster: number;
}

export interface ThroughputRun {
  id: string;
  label: string;
  messages: number;
  /** messages/s handled by the subscriber, first to last */
  rate: number;
  /** Redis CPU (user + sys, summed over every node involved) per message, µs */
  redisCpuUsPerMessage: number;
  nodes: number;
}

export interface ClusterResult {
  trials: number;
  rate: number;
  nodeTimeoutMs: number;
  deafAfterMs: number;
  stallMs: number;
  destinationDelayMs: number;
  contenders: Array<{ id: string; label: string }>;
  outcomes: ClusterTrial[];
  throughput: ThroughputRun[];
}

/** Connection attempts made by this process (ioredis calls net.createConnection for each). */
let attempts = 0;
let counting = false;
function countConnectionAttempts(): void {
  if (counting) return;
  counting = true;
  const original = net.createConnection;
  (net as { createConnection: typeof net.createConnection }).createConnection = ((...args: Parameters<typeof net.createConnection>) => {
    attempts++;
    return original(...args);
  }) as typeof net.createConnection;
}

interface Received {
  seq: number;
  channel: string;
  sentNs: number;
  recvNs: number;
}

async function channelsOverShards(cluster: RedisCluster, trial: number): Promise<string[]> {
  const channels: string[] = [];
  for (const primary of await cluster.primaries()) {
    for (let i = 0; i < CHANNELS_PER_SHARD; i++) channels.push(await cluster.channelOwnedBy(primary, `bench.cluster.t${trial}`));
  }
  return channels;
}

async function otherPrimary(cluster: RedisCluster, than: ClusterNode): Promise<ClusterNode> {
  return (await cluster.primaries()).find((p) => p !== than)!;
}

/** One fault on a stable cluster with one contender; leaves the cluster stable with every node running. */
async function trial(ctx: BenchContext, cluster: RedisCluster, fault: ClusterFault, trialNo: number, contender: ClusterContender): Promise<ClusterTrial> {
  const channels = await channelsOverShards(cluster, trialNo);
  const target = channels[0]!;
  const slot = cluster.slotOf(target);
  // A migration moves the first channel's slot only; the other faults hit its whole shard.
  const affected = fault.startsWith('migrate') ? [target] : channels.slice(0, CHANNELS_PER_SHARD);
  const received: Received[] = [];
  const acked = new Map<number, number>();
  const publisher = new Worker(`cluster-publisher (${contender.publisher})`, 'cluster-publisher', {
    kind: contender.publisher,
    seeds: cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
    channels,
    rate: RATE,
  });
  publisher.on('acks', (batch: Array<[number, number]>) => {
    for (const [seq, sentNs] of batch) acked.set(seq, sentNs);
  });
  let subscriber: ClusterSubscriber | undefined;
  try {
    subscriber = await contender.subscribe(cluster.seeds, channels, (channel, data) => {
      received.push({ seq: data.seq, channel, sentNs: data.t, recvNs: nowNs() });
    });
    await publisher.waitReady();
    await publisher.request('start');
    const healthyBy = Date.now() + 15_000;
    while (channels.some((c) => received.filter((r) => r.channel === c).length < 3)) {
      if (Date.now() > healthyBy) throw new Error(`cluster ${fault}: ${contender.id} does not receive on every channel before the fault`);
      await delay(20);
    }
    await delay(500 + Math.random() * 1_000);

    // Date.now() (harness) to CLOCK_MONOTONIC ns (publisher, subscriber).
    const clockOffsetNs = nowNs() - Date.now() * 1e6;
    const toNs = (dateMs: number) => dateMs * 1e6 + clockOffsetNs;
    const attemptsBefore = attempts;
    const acceptedBefore = await cluster.infoByNode('stats', ['total_connections_received']);
    let faultNs = nowNs();
    let ownerNs: number;
    let electedMeanwhile: boolean | null = null;
    switch (fault) {
      case 'kill': {
        const p = await cluster.killPrimaryOf(target);
        faultNs = toNs(p.faultAt);
        ownerNs = toNs(p.promotedAt);
        break;
      }
      case 'failover': {
        const p = await cluster.failoverOf(target);
        faultNs = toNs(p.faultAt);
        ownerNs = toNs(p.promotedAt);
        break;
      }
      case 'stall': {
        const paused = await cluster.pausePrimaryOf(target);
        faultNs = toNs(paused.pausedAt);
        const promotion = paused.waitForPromotion({ timeoutMs: STALL_MS + 5_000 }).catch(() => null);
        await delay(STALL_MS);
        const resumed = await paused.resume();
        electedMeanwhile = resumed.electedMeanwhile;
        const promoted = await promotion;
        ownerNs = promoted ? toNs(promoted.promotedAt) : toNs(resumed.resumedAt);
        break;
      }
      default: {
        const from = await cluster.ownerOf(target);
        const order = fault === 'migrate-target-first' ? 'target-first' : 'source-first';
        const destinationDelayMs = fault === 'migrate-destination-late' ? DESTINATION_DELAY_MS : 0;
        const m = await cluster.migrateSlot(slot, { to: await otherPrimary(cluster, from), order, destinationDelayMs });
        // The fault starts when the first of the two nodes is told, and a primary owns the slot
        // again when both are (the destination claims it; the source stops serving it).
        faultNs = toNs(Math.min(m.sourceToldAt, m.destinationToldAt));
        ownerNs = toNs(Math.max(m.sourceToldAt, m.destinationToldAt));
      }
    }
    const stableNs = nowNs();
    const stableDeadlineNs = stableNs + DEAF_AFTER_MS * 1e6;
    // Handling again: a message sent after a primary owned the slot again is handled (one sent
    // earlier may still come through the old path: a failover's old primary, a frozen node's buffer).
    const firstAfter = (channel: string) => received.find((r) => r.channel === channel && r.sentNs > ownerNs);
    while (nowNs() < stableDeadlineNs && affected.some((c) => !firstAfter(c))) await delay(20);
    const recoveredNs = affected.every((c) => firstAfter(c)) ? Math.max(...affected.map((c) => firstAfter(c)!.recvNs)) : null;
    const outageEndNs = recoveredNs ?? nowNs();
    const attemptsDuring = attempts - attemptsBefore;
    // Per node, over the nodes that ran throughout (a killed node's counter is gone, a resumed one's is back).
    let acceptedDuring = 0;
    for (const [node, after] of await cluster.infoByNode('stats', ['total_connections_received'])) {
      const before = acceptedBefore.get(node);
      if (before) acceptedDuring += after.total_connections_received! - before.total_connections_received!;
    }
    await delay(SETTLE_MS);
    const stats = await publisher.request<{ sent: number; rejected: number }>('stop');
    await delay(200); // the last acks
    // Messages sent in the last second may still be in flight: not counted.
    const countFrom = faultNs - 500e6;
    const countUntil = nowNs() - 1_000e6;
    const window = [...acked].filter(([, sentNs]) => sentNs >= countFrom && sentNs <= countUntil).map(([seq]) => seq);
    const handled = new Map<number, number>();
    for (const r of received) handled.set(r.seq, (handled.get(r.seq) ?? 0) + 1);
    const lostSentMs = window.filter((seq) => !handled.has(seq)).map((seq) => (acked.get(seq)! - faultNs) / 1e6);
    return {
      fault,
      trial: trialNo,
      contender: contender.id,
      recoveryMs: recoveredNs === null ? null : (recoveredNs - faultNs) / 1e6,
      fromOwnerMs: recoveredNs === null ? null : (recoveredNs - ownerNs) / 1e6,
      ownerAfterMs: (ownerNs - faultNs) / 1e6,
      stableAfterMs: (stableNs - faultNs) / 1e6,
      deaf: recoveredNs === null,
      lost: lostSentMs.length,
      lostSentMs: lostSentMs.length ? [Math.min(...lostSentMs), Math.max(...lostSentMs)] : null,
      duplicates: window.filter((seq) => (handled.get(seq) ?? 0) > 1).length,
      published: window.length,
      publishRejected: stats.rejected,
      electedMeanwhile,
      attempts: attemptsDuring,
      attemptsPerSecond: attemptsDuring / ((outageEndNs - faultNs) / 1e9),
      acceptedByCluster: acceptedDuring,
    };
  } finally {
    await subscriber?.close();
    await publisher.stop(2_000);
    // Back to 3 primaries with a replica each, every node running.
    for (const node of cluster.nodes) {
      if (node.state !== 'killed') continue;
      await cluster.restartNode(node);
      ctx.trackPid(node.pid);
    }
  }
}

async function startBenchCluster(ctx: BenchContext): Promise<RedisCluster> {
  // No pub/sub output buffer limit, as on the standalone bench server.
  const cluster = await startCluster({ config: { 'client-output-buffer-limit': 'pubsub 0 0 0' } });
  for (const node of cluster.nodes) {
    ctx.trackPid(node.pid);
    // run.ts pins this process (and so what it spawns) off the subscriber core: six nodes on one
    // core would starve the cluster bus. Redis goes anywhere.
    pin(node.pid, ALL_CPUS);
  }
  return cluster;
}

/** Redis CPU seconds (user + sys) summed over `nodes`. */
async function redisCpu(nodes: Redis[]): Promise<number> {
  let total = 0;
  for (const n of nodes) {
    const info = String(await n.info('cpu'));
    total += Number(/used_cpu_sys:(\S+)/.exec(info)?.[1] ?? 0) + Number(/used_cpu_user:(\S+)/.exec(info)?.[1] ?? 0);
  }
  return total;
}

/**
 * `messages` 100 B messages, pipelined (batches of 500, up to 4 outstanding) through `publishers`
 * (round-robin, each with its own channel), to one subscriber that counts them.
 */
async function throughputRun(
  id: string,
  label: string,
  messages: number,
  targets: { publisher: Redis; channel: string; command: 'publish' | 'spublish' }[],
  subscribe: (onMessage: () => void) => Promise<() => Promise<void>>,
  cpuNodes: Redis[],
): Promise<ThroughputRun> {
  let count = 0;
  let firstNs = 0;
  let lastNs = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const close = await subscribe(() => {
    const t = nowNs();
    if (count === 0) firstNs = t;
    lastNs = t;
    if (++count === messages) done();
  });
  const payload = 'x'.repeat(100);
  const cpuBefore = await redisCpu(cpuNodes);
  const outstanding = new Set<Promise<unknown>>();
  for (let sent = 0; sent < messages; ) {
    const target = targets[(sent / 500) % targets.length | 0]!;
    const pipeline = target.publisher.pipeline();
    const end = Math.min(messages, sent + 500);
    for (; sent < end; sent++) pipeline[target.command](target.channel, payload);
    const p: Promise<unknown> = pipeline.exec().finally(() => outstanding.delete(p));
    outstanding.add(p);
    if (outstanding.size >= 4) await Promise.race(outstanding);
  }
  await Promise.all(outstanding);
  await Promise.race([all, delay(30_000)]);
  const cpuAfter = await redisCpu(cpuNodes);
  await close();
  return {
    id,
    label,
    messages: count,
    rate: count > 1 ? (count - 1) / ((lastNs - firstNs) / 1e9) : 0,
    redisCpuUsPerMessage: ((cpuAfter - cpuBefore) * 1e6) / messages,
    nodes: cpuNodes.length,
  };
}

async function throughputComparison(ctx: BenchContext, cluster: RedisCluster, messages: number, rounds: number): Promise<ThroughputRun[]> {
  const connect = async (port: number): Promise<Redis> => {
    const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
    r.on('error', () => undefined);
    await r.connect();
    return r;
  };
  const opened: Redis[] = [];
  const open = async (port: number) => {
    const r = await connect(port);
    opened.push(r);
    return r;
  };
  const standalone = await startRedis({ config: { 'client-output-buffer-limit': 'pubsub 0 0 0' } });
  ctx.trackPid(standalone.pid);
  try {
    const allNodes = await Promise.all(cluster.nodes.map((n) => open(n.port)));
    const primaries = await cluster.primaries();
    const plainSubscriber = (port: number, channel: string) => async (on: () => void) => {
      const sub = await connect(port);
      sub.on('messageBuffer', on);
      await sub.subscribe(channel);
      return async () => void sub.disconnect();
    };
    const shardedSubscriber = (channels: string[]) => async (on: () => void) => {
      const sub = new Cluster(cluster.seeds, { shardedSubscribers: true, lazyConnect: true });
      sub.on('error', () => undefined);
      sub.on('smessageBuffer', on);
      await sub.connect();
      for (const c of channels) await sub.ssubscribe(c);
      return async () => void sub.disconnect();
    };
    const standalonePub = await open(standalone.port);
    const shardChannel = await cluster.channelOwnedBy(primaries[0]!, 'bench.tp.shard');
    const onePub = await open(primaries[0]!.port);
    // All three shards: one publisher connection per primary, each on a channel it owns.
    const targets = await Promise.all(
      primaries.map(async (p) => ({ publisher: await open(p.port), channel: await cluster.channelOwnedBy(p, 'bench.tp.shards'), command: 'spublish' as const })),
    );
    const classicPub = await open(primaries[0]!.port);
    const paths = [
      () => throughputRun('standalone', 'standalone PUBLISH -> SUBSCRIBE', messages, [{ publisher: standalonePub, channel: 'bench.tp', command: 'publish' }], plainSubscriber(standalone.port, 'bench.tp'), [standalonePub]),
      () => throughputRun('sharded-1', 'cluster SPUBLISH -> SSUBSCRIBE, one shard', messages, [{ publisher: onePub, channel: shardChannel, command: 'spublish' }], shardedSubscriber([shardChannel]), allNodes),
      () => throughputRun('sharded-3', 'cluster SPUBLISH -> SSUBSCRIBE, three shards', messages, targets, shardedSubscriber(targets.map((t) => t.channel)), allNodes),
      // Classic PUBLISH on a cluster is broadcast to every node over the cluster bus.
      () => throughputRun('cluster-classic', 'cluster PUBLISH -> SUBSCRIBE (on another primary)', messages, [{ publisher: classicPub, channel: 'bench.tp.classic', command: 'publish' }], plainSubscriber(primaries[1]!.port, 'bench.tp.classic'), allNodes),
    ];
    // A warm-up round (JIT, connections), discarded; then the median of `rounds`, order rotating.
    for (const path of paths) await path();
    const byId = new Map<string, ThroughputRun[]>();
    for (let round = 0; round < rounds; round++) {
      for (const path of rotate(paths, round)) {
        const run = await path();
        byId.set(run.id, [...(byId.get(run.id) ?? []), run]);
      }
    }
    return [...byId.values()].map((runs) => ({
      ...runs[0]!,
      rate: median(runs.map((r) => r.rate)),
      redisCpuUsPerMessage: median(runs.map((r) => r.redisCpuUsPerMessage)),
    }));
  } finally {
    for (const r of opened) r.disconnect();
    await standalone.stop();
  }
}

export async function clusterSection(ctx: BenchContext, contenders: ClusterContender[] = CLUSTER_CONTENDERS): Promise<ClusterResult> {
  countConnectionAttempts();
  const trials = Number(process.env.BENCH_CLUSTER_TRIALS ?? (ctx.quick ? 1 : 5));
  const faults = (process.env.BENCH_CLUSTER_FAULTS?.split(',') as ClusterFault[] | undefined) ?? [...CLUSTER_FAULTS];
  const outcomes: ClusterTrial[] = [];
  let nodeTimeoutMs = 0;
  for (const fault of faults) {
    // A fresh cluster per fault; trials of one fault run on the state the previous one left (stable,
    // every node running, 3 primaries with a replica each).
    const cluster = await startBenchCluster(ctx);
    nodeTimeoutMs = cluster.nodeTimeoutMs;
    try {
      for (let t = 1; t <= trials; t++) {
        for (const contender of contenders) {
          const r = await trial(ctx, cluster, fault, t, contender);
          outcomes.push(r);
          ctx.log(
            `cluster ${fault} #${t} ${contender.id}: ` +
              (r.recoveryMs === null
                ? `DEAF (nothing on an affected channel ${DEAF_AFTER_MS / 1000} s after the cluster was stable)`
                : `handling again after ${Math.round(r.recoveryMs)} ms (${Math.round(r.fromOwnerMs!)} ms after a primary owned the slot)`) +
              `; owner after ${Math.round(r.ownerAfterMs)} ms; lost ${r.lost}/${r.published}` +
              (r.lostSentMs ? ` (sent ${Math.round(r.lostSentMs[0])}..${Math.round(r.lostSentMs[1])} ms after the fault)` : '') +
              `, duplicates ${r.duplicates}, publish rejected ${r.publishRejected}` +
              `; ${r.attempts} connection attempts (${r.attemptsPerSecond.toFixed(1)}/s), ${r.acceptedByCluster} accepted by the cluster` +
              (r.electedMeanwhile === null ? '' : `; replica elected meanwhile: ${r.electedMeanwhile}`),
          );
        }
      }
    } finally {
      await cluster.stop();
    }
  }
  const cluster = await startBenchCluster(ctx);
  let throughput: ThroughputRun[];
  try {
    throughput = await throughputComparison(ctx, cluster, ctx.quick ? 20_000 : 100_000, ctx.quick ? 1 : 3);
  } finally {
    await cluster.stop();
  }
  for (const r of throughput) {
    ctx.log(`cluster throughput ${r.label}: ${fmtInt(r.rate)} msg/s, Redis CPU ${r.redisCpuUsPerMessage.toFixed(2)} µs/message over ${r.nodes} node(s)`);
  }
  return {
    trials,
    rate: RATE,
    nodeTimeoutMs,
    deafAfterMs: DEAF_AFTER_MS,
    stallMs: STALL_MS,
    destinationDelayMs: DESTINATION_DELAY_MS,
    contenders: contenders.map((c) => ({ id: c.id, label: c.label })),
    outcomes,
    throughput,
  };
}
