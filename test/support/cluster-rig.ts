import 'reflect-metadata';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern } from '@nestjs/microservices';
import { Redis } from 'ioredis';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer, type RedisPubSubOptions } from '../../lib/index.js';
import { closeClient, NO_RETRY_OPTIONS } from '../harness/clients.js';
import type { ClusterNode, RedisCluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';
import { CaptureLogger } from './capture-logger.js';
import { FAST_HEARTBEAT } from './fault-rig.js';
import { tally, type Tally } from './steady-stream.js';

/**
 * A Nest microservice (RedisPubSubServer) and a RedisPubSubClient on a real Redis Cluster, the
 * server handling sequence-numbered events on shard channels spread over every primary, and a
 * steady stream of them emitted by the client: what the cluster fault tests run a fault through.
 */

export interface Handling {
  seq: number;
  at: number;
}

/** A connection attempt a transport reported (`reconnecting` event), by node. */
export interface Attempt {
  node: string | undefined;
  connection: string;
  delayMs: number;
  at: number;
}

export interface ClusterRig {
  cluster: RedisCluster;
  channels: string[];
  /** The channel answered by a @MessagePattern (sum of numbers). */
  requestChannel: string;
  app: INestMicroservice;
  server: RedisPubSubServer;
  client: RedisPubSubClient;
  logger: CaptureLogger;
  /** Per channel, in handling order: the `seq` of each event handled, and when. */
  handled: Map<string, Handling[]>;
  /** Markers (raw SPUBLISHes) handled, by channel. */
  markers: Map<string, Set<string>>;
  /** `reconnecting` events of the server and the client. */
  attempts: Attempt[];
  stream: ClusterStream;
  close(): Promise<void>;
}

export const RIG_NAME = 'cluster-faults';
const NO_PERIODIC_REFRESH_MS = 3_600_000;

function recordingModule(channels: string[], requestChannel: string, handled: ClusterRig['handled'], markers: ClusterRig['markers']) {
  class Recorder {}
  const proto = Recorder.prototype as unknown as Record<string, unknown>;
  channels.forEach((channel, i) => {
    handled.set(channel, []);
    markers.set(channel, new Set());
    const key = `on${i}`;
    proto[key] = (data: { seq?: number; marker?: string }) => {
      if (typeof data?.marker === 'string') markers.get(channel)!.add(data.marker);
      else if (typeof data?.seq === 'number') handled.get(channel)!.push({ seq: data.seq, at: Date.now() });
    };
    EventPattern<string>(channel)(proto, key, Object.getOwnPropertyDescriptor(proto, key)!);
  });
  proto.sum = (numbers: number[]) => numbers.reduce((a, b) => a + b, 0);
  MessagePattern(requestChannel)(proto, 'sum', Object.getOwnPropertyDescriptor(proto, 'sum')!);
  Controller()(Recorder);
  @Module({ controllers: [Recorder] })
  class RecordingModule {}
  return RecordingModule;
}

/** Two channels on each primary, in slots of their own. */
export async function channelsOnEveryShard(cluster: RedisCluster, perShard = 2): Promise<string[]> {
  const channels: string[] = [];
  for (const primary of await cluster.primaries()) {
    for (let i = 0; i < perShard; i++) channels.push(await cluster.channelOwnedBy(primary, 'ev'));
  }
  return channels;
}

export async function startClusterRig(cluster: RedisCluster, channels: string[], requestChannel: string, options: RedisPubSubOptions = {}): Promise<ClusterRig> {
  const handled: ClusterRig['handled'] = new Map();
  const markers: ClusterRig['markers'] = new Map();
  const attempts: Attempt[] = [];
  const logger = new CaptureLogger();
  // No periodic slot map refresh: every recovery must come from the fault's own signals (a MOVED, a
  // sunsubscribe push, a shard lost or suspect), never from the safety net that would hide it.
  const common: RedisPubSubOptions = { cluster: { nodes: cluster.seeds, slotsRefreshInterval: NO_PERIODIC_REFRESH_MS }, heartbeat: FAST_HEARTBEAT, ...options };
  const server = new RedisPubSubServer({ ...common, name: RIG_NAME });
  const app = await NestFactory.createMicroservice(recordingModule(channels, requestChannel, handled, markers), { strategy: server, logger });
  server.on('reconnecting', (info) => attempts.push({ node: info.node, connection: `server:${info.connection}`, delayMs: info.delayMs, at: Date.now() }));
  const client = new RedisPubSubClient({ ...common, name: `${RIG_NAME}-client` });
  client.on('reconnecting', (info) => attempts.push({ node: info.node, connection: `client:${info.connection}`, delayMs: info.delayMs, at: Date.now() }));
  let stream: ClusterStream | undefined;
  try {
    await app.listen();
    await client.connect();
    stream = new ClusterStream(client, channels);
  } catch (error) {
    await client.close();
    await app.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    cluster,
    channels,
    requestChannel,
    app,
    server,
    client,
    logger,
    handled,
    markers,
    attempts,
    stream,
    close: () =>
      (closing ??= (async () => {
        await stream.stop();
        await client.close();
        await app.close();
      })()),
  };
}

/**
 * `{ seq }` on every channel every `everyMs`, published with the client's `emit()` (so publishing
 * through the fault is under test too: emit() waits in the offline queue or re-sends after a
 * redirect, which must never publish twice). An event counts as published once emit() resolved;
 * one whose emit() failed is not counted (its fate is unknown: handled or not, it is neither lost
 * nor duplicated).
 */
export class ClusterStream {
  readonly published = new Map<string, Set<number>>();
  /** When each emit() was called, by channel and seq. */
  readonly calledAt = new Map<string, Map<number, number>>();
  readonly failures: string[] = [];
  private seq = 0;
  private timer?: NodeJS.Timeout;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly client: RedisPubSubClient,
    private readonly channels: string[],
  ) {
    for (const channel of channels) {
      this.published.set(channel, new Set());
      this.calledAt.set(channel, new Map());
    }
  }

  start(everyMs = 20): void {
    this.timer ??= setInterval(() => this.next(), everyMs);
  }

  /** The last seq emitted (on every channel). */
  get last(): number {
    return this.seq;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private next(): void {
    const seq = ++this.seq;
    for (const channel of this.channels) {
      this.calledAt.get(channel)!.set(seq, Date.now());
      const sent = firstValueFrom(this.client.emit(channel, { seq }), { defaultValue: undefined }).then(
        () => void this.published.get(channel)!.add(seq),
        (error: unknown) => void this.failures.push(`${channel} #${seq}: ${error instanceof Error ? error.message : String(error)}`),
      );
      this.inFlight.add(sent);
      void sent.finally(() => this.inFlight.delete(sent));
    }
  }
}

export interface ChannelOutcome extends Tally {
  channel: string;
  published: number;
  handled: number;
}

/** Lost, duplicated and late (out of order) events per channel. */
export function outcomes(rig: ClusterRig): ChannelOutcome[] {
  return rig.channels.map((channel) => {
    const handled = rig.handled.get(channel)!.map((h) => h.seq);
    const published = rig.stream.published.get(channel)!;
    return { channel, published: published.size, handled: handled.length, ...tally(handled, published) };
  });
}

/**
 * When `channel` was handled again after a fault at `faultAt`: the end of the longest pause in
 * its handling from the last event handled before the fault on.
 */
export function handledAgainAt(rig: ClusterRig, channel: string, faultAt: number): number | undefined {
  const times = rig.handled.get(channel)!.map((h) => h.at);
  const before = times.filter((at) => at <= faultAt);
  const after = times.filter((at) => at > faultAt);
  if (after.length === 0) return undefined;
  let previous = before.length > 0 ? before[before.length - 1]! : faultAt;
  let longest = -1;
  let end = after[0]!;
  for (const at of after) {
    if (at - previous > longest) {
      longest = at - previous;
      end = at;
    }
    previous = at;
  }
  return end;
}

/** Waits until every channel handled an event emitted after this call (the stream must be running). */
export async function expectHandledOnEveryChannel(rig: ClusterRig, what: string, timeoutMs = 20_000): Promise<void> {
  const from = rig.stream.last;
  await waitFor(() => rig.channels.every((channel) => rig.handled.get(channel)!.some((h) => h.seq > from)), {
    timeoutMs,
    message: `${what}: every channel handles events emitted after seq ${from}; last handled: ${JSON.stringify(
      rig.channels.map((c) => [c, rig.handled.get(c)!.at(-1)?.seq]),
    )}`,
  });
}

/** Running nodes' connections named after the rig (subscriber and publisher of server and client). */
async function namedConnections(cluster: RedisCluster): Promise<Map<string, string[]>> {
  const byNode = new Map<string, string[]>();
  await Promise.all(
    cluster.nodes
      .filter((node) => node.state === 'running')
      .map(async (node) => {
        const list = String(await node.command('CLIENT', 'LIST'));
        const names = [...list.matchAll(/ name=(\S+) /g)].map((m) => m[1]!).filter((name) => /:(sub|pub)$/.test(name) && name.startsWith(RIG_NAME));
        byNode.set(node.address, names.sort());
      }),
  );
  return byNode;
}

/**
 * The transport is back: `connected`, every channel acknowledged on the primary that serves its
 * slot now (as the cluster's nodes agree), no shard beyond those, exactly one subscriber and one
 * publisher per shard in use (as reported and as Redis lists them), and a marker SPUBLISHed
 * straight to each channel's owner (which counts our subscriber there) is handled.
 */
export async function expectSettled(rig: ClusterRig, what: string, timeoutMs = 20_000): Promise<void> {
  const { cluster, server, client, channels } = rig;
  let owners: ClusterNode[] = [];
  let why = '';
  await waitFor(
    async () => {
      try {
        return await settledNow();
      } catch (error) {
        why = error instanceof Error ? error.message : String(error);
        throw error;
      }
    },
    { timeoutMs, intervalMs: 50, message: `${what}: transport settled on the current owners` },
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last reason: ${why}`);
  });
  async function settledNow(): Promise<boolean> {
    {
      owners = await Promise.all(channels.map((channel) => cluster.ownerOf(channel)));
      // The request channel is a shard channel of the server's too.
      const requestOwner = await cluster.ownerOf(rig.requestChannel);
      const stats = server.getStats();
      if (stats.state !== 'connected') throw new Error(`server ${stats.state}, missing ${stats.subscriptions.missing.join(', ')}`);
      if (stats.subscriptions.missing.length > 0) throw new Error(`missing ${stats.subscriptions.missing.join(', ')}`);
      const shards = stats.cluster!.shards;
      const expected = new Set([...owners, requestOwner].map((owner) => owner.address));
      const reported = shards.map((shard) => shard.node).sort();
      if (reported.join() !== [...expected].sort().join()) throw new Error(`server shards ${reported.join()} vs owners ${[...expected].sort().join()}`);
      for (const shard of shards) {
        const wanted = [...owners, requestOwner].filter((owner) => owner.address === shard.node).length;
        if (shard.state !== 'connected' || shard.missing.length > 0 || shard.channels !== wanted) {
          throw new Error(`shard ${JSON.stringify(shard)}: ${wanted} channel(s) expected`);
        }
      }
      if (stats.cluster!.connections !== 2 * expected.size) throw new Error(`server reports ${stats.cluster!.connections} connections`);
      const clientStats = client.getStats();
      if (clientStats.state !== 'connected') throw new Error(`client ${clientStats.state}`);
      const primaries = new Set((await cluster.primaries()).map((p) => p.address));
      const clientShards = clientStats.cluster!.shards.map((shard) => shard.node);
      if (clientShards.some((node) => !primaries.has(node))) throw new Error(`client shard on a non-primary: ${clientShards.join()}`);
      if (clientStats.cluster!.connections !== 2 * clientShards.length) throw new Error(`client reports ${clientStats.cluster!.connections} connections`);
      // What Redis lists: one subscriber and one publisher per shard in use, nothing elsewhere.
      const listed = await namedConnections(cluster);
      for (const [node, names] of listed) {
        const want = [
          ...(clientShards.includes(node) ? [`${RIG_NAME}-client:pub`, `${RIG_NAME}-client:sub`] : []),
          ...(expected.has(node) ? [`${RIG_NAME}:pub`, `${RIG_NAME}:sub`] : []),
        ].sort();
        if (names.join() !== want.join()) throw new Error(`${node} lists ${names.join() || 'nothing'}, want ${want.join() || 'nothing'}`);
      }
      return true;
    }
  }
  await Promise.all(
    channels.map(async (channel, i) => {
      const marker = `${what}#${i}`;
      const owner = owners[i]!;
      const raw = new Redis({ host: owner.host, port: owner.port, ...NO_RETRY_OPTIONS });
      raw.on('error', () => undefined);
      try {
        await raw.connect();
        const receivers = (await raw.spublish(channel, JSON.stringify({ data: { marker } }))) as number;
        if (receivers < 1) throw new Error(`${what}: SPUBLISH "${channel}" on its owner ${owner.address} reached no subscriber`);
      } finally {
        await closeClient(raw);
      }
      await waitFor(() => rig.markers.get(channel)!.has(marker), { timeoutMs, message: `${what}: marker on "${channel}" handled` });
    }),
  );
}

/** Stops the stream and waits until the last event each channel published is handled (later ones may come from a draining connection). */
export async function drain(rig: ClusterRig, timeoutMs = 20_000): Promise<ChannelOutcome[]> {
  await rig.stream.stop();
  await waitFor(
    () =>
      rig.channels.every((channel) => {
        const published = [...rig.stream.published.get(channel)!];
        const last = Math.max(0, ...published);
        return last === 0 || rig.handled.get(channel)!.some((h) => h.seq === last);
      }),
    { timeoutMs, message: 'the last published event of every channel handled' },
  );
  return outcomes(rig);
}
