import { Redis } from 'ioredis';
import { closeClient, NO_RETRY_OPTIONS } from './harness/clients.js';
import { startCluster, type ClusterNode, type RedisCluster } from './harness/cluster.js';
import { waitFor } from './harness/wait.js';

/**
 * Pins the Redis 7.0 and ioredis 6 behaviours of sharded pub/sub that the cluster transport relies
 * on, on a plain `new Redis({ host, port })` connection (ioredis' default RESP3, not its Cluster
 * class) to one node of a real 3+3 cluster.
 */

let cluster: RedisCluster;
const clients: Redis[] = [];

beforeAll(async () => {
  cluster = await startCluster();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => closeClient(c)));
});

afterAll(async () => {
  await cluster?.stop();
});

/** What a subscriber connection saw: 'moved' events, smessages, and whether it closed. */
interface Watched {
  redis: Redis;
  moved: number;
  messages: { channel: Buffer; payload: Buffer }[];
  closed: boolean;
}

async function connectTo(node: ClusterNode): Promise<Watched> {
  const redis = new Redis({ host: node.host, port: node.port, ...NO_RETRY_OPTIONS });
  redis.on('error', () => {
    /* surfaced through rejected commands */
  });
  clients.push(redis);
  const watched: Watched = { redis, moved: 0, messages: [], closed: false };
  redis.on('moved', () => watched.moved++);
  redis.on('smessageBuffer', (channel: Buffer, payload: Buffer) => watched.messages.push({ channel, payload }));
  redis.on('close', () => (watched.closed = true));
  await redis.connect();
  return watched;
}

/** The shard channels ioredis believes this connection is subscribed to (its SubscriptionSet). */
function ssubscribed(redis: Redis): string[] {
  const set = redis.condition?.subscriber;
  return set ? set.channels('ssubscribe').sort() : [];
}

function payloads(w: Watched): string[] {
  return w.messages.map((m) => m.payload.toString());
}

async function otherPrimary(than: ClusterNode): Promise<ClusterNode> {
  return (await cluster.primaries()).find((p) => p !== than)!;
}

/** Two channels owned by `owner` in different slots. */
async function twoSlotsOf(owner: ClusterNode, prefix: string): Promise<[string, string]> {
  const a = await cluster.channelOwnedBy(owner, prefix);
  for (;;) {
    const b = await cluster.channelOwnedBy(owner, prefix);
    if (cluster.slotOf(b) !== cluster.slotOf(a)) return [a, b];
  }
}

describe('SSUBSCRIBE on a plain connection to one node', () => {
  it('several channels of one slot in one command: each acknowledged, all in the SubscriptionSet', async () => {
    const channels = ['{pin}a', '{pin}b', '{pin}c'];
    const owner = await cluster.ownerOf('{pin}');
    const sub = await connectTo(owner);
    await expect(sub.redis.ssubscribe(...channels)).resolves.toBe(3);
    expect(ssubscribed(sub.redis)).toEqual(channels);
    expect(await owner.command('PUBSUB', 'SHARDNUMSUB', ...channels)).toEqual(['{pin}a', 1, '{pin}b', 1, '{pin}c', 1]);
  });

  it('channels of different slots in one command: rejected with CROSSSLOT, nothing subscribed, connection usable', async () => {
    const owner = (await cluster.primaries())[0]!;
    const [a, b] = await twoSlotsOf(owner, 'cross');
    const sub = await connectTo(owner);
    await expect(sub.redis.ssubscribe(a, b)).rejects.toThrow(/^CROSSSLOT/);
    expect(ssubscribed(sub.redis)).toEqual([]);
    await expect(sub.redis.ping()).resolves.toBe('PONG');
  });

  it('a channel whose slot another node owns: the promise rejects with MOVED <slot> <owner> and "moved" is emitted', async () => {
    const owner = (await cluster.primaries())[0]!;
    const channel = await cluster.channelOwnedBy(owner, 'moved');
    const other = await otherPrimary(owner);
    const sub = await connectTo(other);
    await expect(sub.redis.ssubscribe(channel)).rejects.toThrow(`MOVED ${cluster.slotOf(channel)} ${owner.address}`);
    expect(sub.moved).toBe(1);
    expect(ssubscribed(sub.redis)).toEqual([]);
    await expect(sub.redis.ping()).resolves.toBe('PONG');
  });

  it('smessageBuffer carries (channel Buffer, payload Buffer), binary-safe', async () => {
    const owner = (await cluster.primaries())[0]!;
    const channel = await cluster.channelOwnedBy(owner, 'buffers');
    const sub = await connectTo(owner);
    await sub.redis.ssubscribe(channel);
    const payload = Buffer.from([0, 1, 0xfe, 0xff, 0x0d, 0x0a]);
    await owner.command('SPUBLISH', channel, payload as unknown as string);
    await waitFor(() => sub.messages.length === 1);
    const [message] = sub.messages;
    expect(Buffer.isBuffer(message!.channel) && message!.channel.toString()).toBe(channel);
    expect(Buffer.isBuffer(message!.payload) && message!.payload.equals(payload)).toBe(true);
  });

  it('a replica accepts SSUBSCRIBE (no READONLY needed) and receives what is SPUBLISHed on its primary', async () => {
    const owner = (await cluster.primaries())[0]!;
    const replica = await cluster.replicaOf(owner);
    const channel = await cluster.channelOwnedBy(owner, 'on-replica');
    const sub = await connectTo(replica);
    await expect(sub.redis.ssubscribe(channel)).resolves.toBe(1);
    await owner.command('SPUBLISH', channel, 'via-primary');
    await waitFor(() => sub.messages.length === 1);
    expect(payloads(sub)).toEqual(['via-primary']);
  });
});

describe('SPUBLISH', () => {
  it("returns only the local node's receiver count; the shard's other node still delivers", async () => {
    const owner = (await cluster.primaries())[0]!;
    const replica = await cluster.replicaOf(owner);
    const channel = await cluster.channelOwnedBy(owner, 'counts');
    const onOwner = [await connectTo(owner), await connectTo(owner)];
    const onReplica = await connectTo(replica);
    for (const s of [...onOwner, onReplica]) await s.redis.ssubscribe(channel);
    expect(await owner.command('SPUBLISH', channel, 'from-primary')).toBe(2);
    // A replica of the shard accepts SPUBLISH too, counts its own receivers, and the primary's get it.
    expect(await replica.command('SPUBLISH', channel, 'from-replica')).toBe(1);
    await waitFor(() => [...onOwner, onReplica].every((s) => s.messages.length === 2));
    for (const s of onOwner) expect(payloads(s)).toEqual(['from-primary', 'from-replica']);
    // On the replica, its own SPUBLISH is delivered at once, the primary's when replication brings it: either order.
    expect(payloads(onReplica).sort()).toEqual(['from-primary', 'from-replica']);
  });

  it('on a node outside the shard: MOVED <slot> <owner>', async () => {
    const owner = (await cluster.primaries())[0]!;
    const channel = await cluster.channelOwnedBy(owner, 'spublish-moved');
    const other = await otherPrimary(owner);
    await expect(other.command('SPUBLISH', channel, 'x')).rejects.toThrow(`MOVED ${cluster.slotOf(channel)} ${owner.address}`);
  });
});

describe('slot migration of a subscribed channel', () => {
  it.each(['target-first', 'source-first'] as const)(
    '%s: the source and its replica push sunsubscribe; ioredis emits "moved" and drops the channel, the connection stays usable',
    async (order) => {
      const from = (await cluster.primaries())[0]!;
      const replica = await cluster.replicaOf(from);
      const channel = await cluster.channelOwnedBy(from, `migrated-${order}`);
      const onSource = await connectTo(from);
      const onReplica = await connectTo(replica);
      await onSource.redis.ssubscribe(channel);
      await onReplica.redis.ssubscribe(channel);
      const to = await otherPrimary(from);
      await cluster.migrateSlot(cluster.slotOf(channel), { to, order });
      await waitFor(() => onSource.moved === 1 && onReplica.moved === 1, { message: 'sunsubscribe pushes' });
      for (const s of [onSource, onReplica]) {
        expect(ssubscribed(s.redis)).toEqual([]);
        expect(s.closed).toBe(false);
        await expect(s.redis.ping()).resolves.toBe('PONG');
      }
      // Subscribing again on the old node is redirected to the new owner.
      await expect(onSource.redis.ssubscribe(channel)).rejects.toThrow(`MOVED ${cluster.slotOf(channel)} ${to.address}`);
      const onTarget = await connectTo(to);
      await onTarget.redis.ssubscribe(channel);
      await to.command('SPUBLISH', channel, 'after');
      await waitFor(() => onTarget.messages.length === 1);
      expect(onSource.messages).toEqual([]);
    },
  );

  it('the unsolicited sunsubscribe arriving while commands are in flight: each in-flight command still gets its own reply', async () => {
    const from = (await cluster.primaries())[0]!;
    const to = await otherPrimary(from);
    const channel = await cluster.channelOwnedBy(from, 'in-flight');
    const slot = cluster.slotOf(channel);
    const sub = await connectTo(from);
    await sub.redis.ssubscribe(channel);
    await to.command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
    await from.command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
    // The source is told over the subscriber's own connection (RESP3 allows any command there), with
    // a PING pipelined behind it: Redis writes the sunsubscribe push while SETSLOT and PING are both
    // unanswered in ioredis' queue, deterministically.
    const setslot = sub.redis.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
    const ping = sub.redis.ping('in-flight');
    await expect(setslot).resolves.toBe('OK');
    await expect(ping).resolves.toBe('in-flight');
    expect(sub.moved).toBe(1);
    expect(ssubscribed(sub.redis)).toEqual([]);
    await expect(sub.redis.ping('next')).resolves.toBe('next');
    // Finish the migration so the cluster is whole again.
    await to.command('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
    const others = (await cluster.primaries()).filter((p) => p !== from && p !== to);
    await Promise.all(others.map((p) => p.command('CLUSTER', 'SETSLOT', slot, 'NODE', to.id)));
    await cluster.waitStable();
    expect(await cluster.ownerOf(slot)).toBe(to);
  });
});

describe('failover of the primary a sharded subscriber is connected to', () => {
  it('CLUSTER FAILOVER: the old primary (now a replica) pushes sunsubscribe and keeps the connection; the promoted replica keeps its subscribers', async () => {
    const channel = await cluster.channelOwnedBy((await cluster.primaries())[0]!, 'failover');
    const oldPrimary = await cluster.ownerOf(channel);
    const onOld = await connectTo(oldPrimary);
    const onReplica = await connectTo(await cluster.replicaOf(oldPrimary));
    await onOld.redis.ssubscribe(channel);
    await onReplica.redis.ssubscribe(channel);
    const { newOwner } = await cluster.failoverOf(channel);
    await waitFor(() => onOld.moved === 1, { message: 'sunsubscribe push on the old primary' });
    expect(ssubscribed(onOld.redis)).toEqual([]);
    expect(onOld.closed).toBe(false);
    await expect(onOld.redis.ping()).resolves.toBe('PONG');

    expect(onReplica.moved).toBe(0);
    expect(ssubscribed(onReplica.redis)).toEqual([channel]);
    expect(await newOwner.command('SPUBLISH', channel, 'after-failover')).toBe(1);
    await waitFor(() => onReplica.messages.length === 1);
    expect(payloads(onReplica)).toEqual(['after-failover']);
    expect(onOld.messages).toEqual([]);
  });

  it('SIGSTOP past the node timeout: nothing reaches the old primary\'s subscriber until it is resumed, then a sunsubscribe push', async () => {
    const channel = await cluster.channelOwnedBy((await cluster.primaries())[0]!, 'paused');
    const oldPrimary = await cluster.ownerOf(channel);
    const onOld = await connectTo(oldPrimary);
    const onReplica = await connectTo(await cluster.replicaOf(oldPrimary));
    await onOld.redis.ssubscribe(channel);
    await onReplica.redis.ssubscribe(channel);
    const paused = await cluster.pausePrimaryOf(channel);
    const { newOwner } = await paused.waitForPromotion();
    // The elected replica serves the channel while the old primary is frozen; its subscribers hear it.
    expect(await newOwner.command('SPUBLISH', channel, 'during-pause')).toBe(1);
    await waitFor(() => onReplica.messages.length === 1);
    // The frozen node sends nothing: its subscriber has neither a push nor a close.
    expect(onOld.moved).toBe(0);
    expect(onOld.closed).toBe(false);
    expect(ssubscribed(onOld.redis)).toEqual([channel]);

    const resumed = await paused.resume();
    expect(resumed.electedMeanwhile).toBe(true);
    await waitFor(() => onOld.moved === 1, { message: 'sunsubscribe push after resume' });
    expect(ssubscribed(onOld.redis)).toEqual([]);
    expect(onOld.closed).toBe(false);
    expect(onOld.messages).toEqual([]);
    expect(onReplica.moved).toBe(0);
    expect(ssubscribed(onReplica.redis)).toEqual([channel]);
  });
});
