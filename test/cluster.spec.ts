import 'reflect-metadata';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientRedis, Ctx, EventPattern, Payload, RedisContext, Transport } from '@nestjs/microservices';
import { Redis } from 'ioredis';
import { firstValueFrom } from 'rxjs';
import { keySlot } from '../lib/cluster/key-slot.js';
import { splitAddress } from '../lib/cluster/slot-map.js';
import { RedisPubSubClient, type RedisPubSubOptions } from '../lib/index.js';
import { startCluster, type ClusterNode, type RedisCluster } from './harness/cluster.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { InMemoryTelemetry } from './support/otel.js';
import { Inbox } from './support/inbox.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

const FAST_HEARTBEAT = { intervalMs: 200, timeoutMs: 400 };

describe('Redis Cluster: sharded pub/sub across every shard', () => {
  let cluster: RedisCluster;
  let primaries: ClusterNode[];
  let options: RedisPubSubOptions;
  let app: StartedTestApp;
  const clients: RedisPubSubClient[] = [];

  const client = async (extra: Partial<NonNullable<RedisPubSubOptions['cluster']>> = {}) => {
    const created = new RedisPubSubClient({ ...options, cluster: { ...options.cluster!, ...extra } });
    clients.push(created);
    await created.connect();
    return created;
  };

  beforeAll(async () => {
    cluster = await startCluster();
    primaries = await cluster.primaries();
    options = { cluster: { nodes: cluster.seeds.slice(0, 1) }, heartbeat: FAST_HEARTBEAT };
    app = await startTestApp(options);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await app?.close();
    await cluster?.stop();
  });

  it('hashes channels to the slot Redis computes (hash tags, an empty first tag, multi-byte names)', async () => {
    const node = primaries[0]!;
    for (const name of ['inbound', '{user1000}.following', 'foo{}{bar}', 'foo{{bar}}zap', 'été', '日本語{タグ}']) {
      expect([name, keySlot(name)]).toEqual([name, await node.command('CLUSTER', 'KEYSLOT', name)]);
    }
  });

  it('handles events of channels on every shard, each subscribed (SSUBSCRIBE) on the primary that serves it, from one seed node', async () => {
    const emitter = await client();
    // The test app's handlers: 'orders.created' and 'inbound' (sharded), 'orders.*' (PSUBSCRIBE).
    const owners = await Promise.all(['orders.created', 'inbound'].map((channel) => cluster.ownerOf(channel)));
    for (const channel of ['orders.created', 'inbound']) await firstValueFrom(emitter.emit(channel, { channel }));
    await app.inbox.waitFor((items) => items.some((i) => i.handler === 'created') && items.some((i) => i.handler === 'inbound'));
    for (const [i, channel] of ['orders.created', 'inbound'].entries()) {
      const shard = owners[i]!;
      const sharded = (await shard.command('PUBSUB', 'SHARDCHANNELS')) as string[];
      expect(sharded).toContain(channel);
    }
    // Every shard in use has its own path probe, a shard channel in its own slots.
    const stats = app.server.getStats();
    expect(stats.state).toBe('connected');
    expect(stats.subscriptions.missing).toEqual([]);
    for (const shard of stats.cluster!.shards) {
      const node = primaries.find((p) => p.address === shard.node)!;
      const probes = ((await node.command('PUBSUB', 'SHARDCHANNELS', '__nestjs-redis-pubsub:probe:*')) as string[]).length;
      expect([shard.node, shard.state, shard.missing, probes > 0]).toEqual([shard.node, 'connected', [], true]);
    }
    // One subscriber and one publisher per shard in use, nothing else.
    expect(stats.cluster!.connections).toBe(2 * stats.cluster!.shards.length);
  });

  it('spreads over all three shards: events on a channel of each shard arrive, in order per channel', async () => {
    const channels = await Promise.all(primaries.map((p) => cluster.channelOwnedBy(p, 'spread')));
    const inbox = new Inbox();
    @Controller()
    class SpreadController {
      @EventPattern<string>(channels[0]!)
      a(@Payload() data: { seq: number }, @Ctx() ctx: RedisContext) {
        inbox.push({ handler: 'spread', data, channel: ctx.getChannel(), pattern: undefined, metadata: undefined });
      }
      @EventPattern<string>(channels[1]!)
      b(@Payload() data: { seq: number }, @Ctx() ctx: RedisContext) {
        inbox.push({ handler: 'spread', data, channel: ctx.getChannel(), pattern: undefined, metadata: undefined });
      }
      @EventPattern<string>(channels[2]!)
      c(@Payload() data: { seq: number }, @Ctx() ctx: RedisContext) {
        inbox.push({ handler: 'spread', data, channel: ctx.getChannel(), pattern: undefined, metadata: undefined });
      }
    }
    const spread = await startModule(SpreadController, options);
    try {
      const emitter = await client();
      for (let seq = 1; seq <= 30; seq++) await Promise.all(channels.map((channel) => firstValueFrom(emitter.emit(channel, { seq }))));
      await inbox.waitFor((items) => items.length === 90);
      for (const channel of channels) {
        expect(inbox.items.filter((i) => i.channel === channel).map((i) => (i.data as { seq: number }).seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      }
      const nodes = spread.server.getStats().cluster!.shards.map((s) => s.node).sort();
      expect(nodes).toEqual(primaries.map((p) => p.address).sort());
    } finally {
      await spread.close();
    }
  });

  it('answers requests across shards: the reply channel is a shard channel like any other', async () => {
    const requestShard = (await cluster.ownerOf('math.sum')).address;
    // Each client's reply channel is random: take clients until one listens on another shard than the request's.
    for (let i = 1; ; i++) {
      const requester = await client();
      await expect(firstValueFrom(requester.send('math.sum', [i, 41]))).resolves.toBe(i + 41);
      const shards = requester.getStats().cluster!.shards.map((s) => s.node);
      if (shards.some((node) => node !== requestShard)) {
        expect(shards).toContain(requestShard);
        break;
      }
      expect(i).toBeLessThan(40);
    }
  });

  it('psubscribe handlers hear global channels, published with a classic PUBLISH on any node', async () => {
    const emitter = await client({ globalChannels: ['orders.*'] });
    await firstValueFrom(emitter.emit('orders.placed', { via: 'ours' }));
    // A raw PUBLISH on a node that holds no subscription of ours: Redis broadcasts it over the cluster bus.
    const raw = new Redis({ host: primaries[2]!.host, port: primaries[2]!.port });
    try {
      await raw.publish('orders.shipped', JSON.stringify({ pattern: 'orders.shipped', data: { via: 'raw' } }));
    } finally {
      raw.disconnect();
    }
    await app.inbox.waitFor((items) => items.filter((i) => i.handler === 'any-order' && i.channel !== 'orders.created').length >= 2);
    expect(app.inbox.of('any-order').filter((i) => i.channel !== 'orders.created').map((i) => [i.channel, i.pattern, i.data])).toEqual(
      expect.arrayContaining([
        ['orders.placed', 'orders.*', { via: 'ours' }],
        ['orders.shipped', 'orders.*', { via: 'raw' }],
      ]),
    );
  });

  it('interoperates with Transport.REDIS on global channels: its events reach our pattern handler, ours reach its handlers', async () => {
    // Nest's built-in transport knows nothing of clusters: it connects to one node and uses classic PUBLISH/SUBSCRIBE.
    const node = primaries[1]!;
    const builtInClient = new ClientRedis({ host: node.host, port: node.port });
    const inbox = new Inbox();
    @Controller()
    class BuiltInController {
      @EventPattern<string>('orders.legacy')
      handle(@Payload() data: unknown, @Ctx() ctx: RedisContext) {
        inbox.push({ handler: 'legacy', data, channel: ctx.getChannel(), pattern: undefined, metadata: undefined });
      }
    }
    @Module({ controllers: [BuiltInController] })
    class BuiltInModule {}
    const builtInServer: INestMicroservice = await NestFactory.createMicroservice(BuiltInModule, {
      transport: Transport.REDIS,
      options: { host: primaries[2]!.host, port: primaries[2]!.port },
      logger: new CaptureLogger(),
    });
    await builtInServer.listen();
    try {
      await builtInClient.connect();
      await firstValueFrom(builtInClient.emit('orders.from-nest', { from: 'built-in' }));
      await app.inbox.waitFor((items) => items.some((i) => i.channel === 'orders.from-nest'));
      const global = await client({ globalChannels: ['orders.*'] });
      await firstValueFrom(global.emit('orders.legacy', { from: 'ours' }));
      await inbox.waitFor((items) => items.length === 1);
      expect(inbox.items[0]).toMatchObject({ data: { from: 'ours' }, channel: 'orders.legacy' });
    } finally {
      await builtInClient.close();
      await builtInServer.close();
    }
  });

  it('checks the slot map periodically over the connections it holds: no connection is opened for it', async () => {
    const watcher = new RedisPubSubClient({ ...options, cluster: { ...options.cluster!, slotsRefreshInterval: 50 } });
    clients.push(watcher);
    await watcher.connect();
    await waitFor(() => watcher.getStats().state === 'connected');
    const connectionsBefore = (await cluster.sumInfo('stats', ['total_connections_received'])).total_connections_received!;
    const readsBefore = watcher.getStats().cluster!.refreshes;
    await waitFor(() => watcher.getStats().cluster!.refreshes >= readsBefore + 5);
    const connectionsAfter = (await cluster.sumInfo('stats', ['total_connections_received'])).total_connections_received!;
    expect(connectionsAfter - connectionsBefore).toBe(0);
  });

  it('metrics name each shard: connection state per primary (server.address, server.port)', async () => {
    const telemetry = new InMemoryTelemetry().register();
    const observed = await startTestApp({ ...options, name: 'observed' });
    try {
      const shards = observed.server.getStats().cluster!.shards;
      expect(shards.length).toBeGreaterThan(1);
      const collected = await telemetry.collect();
      for (const shard of shards) {
        const [host, port] = splitAddress(shard.node);
        for (const connection of ['subscriber', 'publisher']) {
          const series = { 'redis_pubsub.instance': 'observed', 'redis_pubsub.connection': connection, 'server.address': host, 'server.port': port };
          expect([shard.node, connection, collected.value('redis_pubsub.connection.state', { ...series, 'redis_pubsub.state': 'connected' })]).toEqual([shard.node, connection, 1]);
        }
      }
    } finally {
      await observed.close();
      await telemetry.shutdown();
    }
  });

  it('a slot migrated with its destination told late: events emitted meanwhile are held and all handled once, in order, on the new primary', async () => {
    const emitter = await client();
    const channel = 'inbound';
    const n = (i: { data: unknown }) => (i.data as { n?: number }).n;
    await expect(firstValueFrom(emitter.emit(channel, { n: 0 }))).resolves.toBe(1);
    const from = await cluster.ownerOf(channel);
    const to = primaries.find((p) => p.address !== from.address)!;
    const migration = cluster.migrateSlot(cluster.slotOf(channel), { to, order: 'source-first', destinationDelayMs: 1_500 });
    // The source drops the slot first: from then on, until the destination is told 1.5 s later, no primary serves it.
    const sent: Array<Promise<unknown>> = [];
    for (let i = 1; i <= 20; i++) {
      sent.push(firstValueFrom(emitter.emit(channel, { n: i })));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await migration;
    await Promise.all(sent);
    await app.inbox.waitFor((items) => items.filter((i) => i.handler === 'inbound' && (n(i) ?? 0) > 0).length === 20);
    expect(app.inbox.of('inbound').map(n).filter((x) => x !== undefined && x > 0)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(app.server.getStats().subscriptions.missing).toEqual([]);
  });

  it('holds emit() in the offline queue until the shard is connected, then publishes it once', async () => {
    const early = new RedisPubSubClient(options);
    clients.push(early);
    const sent = firstValueFrom(early.emit('inbound', { early: true }));
    await expect(sent).resolves.toBe(1);
    await app.inbox.waitFor((items) => items.filter((i) => (i.data as { early?: boolean }).early).length === 1);
    await expect(
      waitFor(() => app.inbox.items.filter((i) => (i.data as { early?: boolean }).early).length > 1, { timeoutMs: 500 }),
    ).rejects.toThrow();
  });
});

describe('Redis Cluster options', () => {
  it.each([
    [{ cluster: { nodes: [] } }, 'option "cluster.nodes" must be a non-empty array of seed nodes'],
    [{ cluster: { nodes: ['redis://:secret@host:1'] } }, 'option "cluster.nodes[0]" must be a port, a "host:port" string or a { host, port } object'],
    [{ cluster: { nodes: [7000] }, url: 'redis://localhost' }, 'options "cluster" and "url"/"redis" exclude each other'],
    [{ cluster: { nodes: [7000] }, durable: { audit: {} } }, 'option "durable" is not supported with "cluster" yet'],
    [{ cluster: { nodes: [7000], slotsRefreshInterval: 0 } }, 'option "cluster.slotsRefreshInterval" must be a whole number of milliseconds'],
    [{ cluster: { nodes: [7000], globalChannels: [''] } }, 'option "cluster.globalChannels" must be an array of channel names'],
  ])('%j is refused: %s', (given, message) => {
    expect(() => new RedisPubSubClient(given as RedisPubSubOptions)).toThrow(message);
  });

  it('never echoes a seed string (it could carry a password)', () => {
    expect(() => new RedisPubSubClient({ cluster: { nodes: ['redis://:hunter2@host:1'] } })).toThrow(expect.objectContaining({ message: expect.not.stringContaining('hunter2') }));
  });
});

async function startModule(controller: new () => unknown, options: RedisPubSubOptions) {
  const { RedisPubSubServer } = await import('../lib/index.js');
  @Module({ controllers: [controller] })
  class SpreadModule {}
  const server = new RedisPubSubServer(options);
  const app = await NestFactory.createMicroservice(SpreadModule, { strategy: server, logger: new CaptureLogger() });
  await app.listen();
  return { server, close: () => app.close() };
}
