import { existsSync } from 'node:fs';
import { startCluster, type ClusterNode, type RedisCluster } from './harness/cluster.js';

/** The cluster harness against a real 3+3 Redis Cluster: every fault moves what it says it moves. */

let cluster: RedisCluster;

beforeAll(async () => {
  cluster = await startCluster();
});

afterAll(async () => {
  await cluster?.stop();
});

function clusterState(node: ClusterNode): Promise<string | undefined> {
  return node.command('CLUSTER', 'INFO').then((info) => /cluster_state:(\w+)/.exec(String(info))?.[1]);
}

async function role(node: ClusterNode): Promise<string> {
  return String(((await node.command('ROLE')) as unknown[])[0]);
}

/** Every node answers cluster_state:ok. */
async function allOk(): Promise<boolean> {
  const states = await Promise.all(cluster.nodes.filter((n) => n.state === 'running').map(clusterState));
  return states.every((s) => s === 'ok');
}

describe('startCluster', () => {
  it('forms 3 primaries with one replica each, every node ok and agreeing', async () => {
    const primaries = await cluster.primaries();
    expect(primaries).toHaveLength(3);
    expect(cluster.seeds.map((s) => s.port).sort()).toEqual(primaries.map((p) => p.port).sort());
    const replicas = await Promise.all(primaries.map((p) => cluster.replicaOf(p)));
    expect(new Set(replicas).size).toBe(3);
    for (const r of replicas) expect(await role(r)).toBe('slave');
    expect(await allOk()).toBe(true);
    for (const node of cluster.nodes) {
      expect(node.id).toMatch(/^[0-9a-f]{40}$/);
      expect(node.pid).toBeGreaterThan(0);
    }
  });

  it('slotOf is the slot Redis computes; ownerOf is the node that serves it, others redirect', async () => {
    for (const channel of ['orders', 'user:{42}:events', 'a', '']) {
      const slot = cluster.slotOf(channel);
      expect(await cluster.nodes[0]!.command('CLUSTER', 'KEYSLOT', channel)).toBe(slot);
    }
    const owner = await cluster.ownerOf('orders');
    await expect(owner.command('SET', 'orders', 'v')).resolves.toBe('OK');
    const other = (await cluster.primaries()).find((p) => p !== owner)!;
    await expect(other.command('GET', 'orders')).rejects.toThrow(`MOVED ${cluster.slotOf('orders')} ${owner.address}`);
  });

  it('channelOwnedBy picks a channel in a slot of the given primary', async () => {
    for (const primary of await cluster.primaries()) {
      const channel = await cluster.channelOwnedBy(primary, 'shard');
      expect(await cluster.ownerOf(channel)).toBe(primary);
    }
  });

  it('infoByNode reads INFO fields of every running node; sumInfo adds them up', async () => {
    const byNode = await cluster.infoByNode('stats', ['total_connections_received']);
    expect([...byNode.keys()].sort((a, b) => a.port - b.port)).toEqual([...cluster.nodes].sort((a, b) => a.port - b.port));
    let total = 0;
    for (const values of byNode.values()) {
      expect(values.total_connections_received).toBeGreaterThan(0);
      total += values.total_connections_received!;
    }
    const sum = (await cluster.sumInfo('stats', ['total_connections_received'])).total_connections_received!;
    // The harness' admin connections are persistent: reading INFO opens no new connection.
    expect(sum).toBe(total);
  });
});

describe('faults', () => {
  it('failoverOf: the replica takes the slot, the old primary becomes its replica', async () => {
    const before = await cluster.ownerOf('orders');
    const replica = await cluster.replicaOf(before);
    const promotion = await cluster.failoverOf('orders');
    expect(promotion.oldOwner).toBe(before);
    expect(promotion.newOwner).toBe(replica);
    expect(promotion.promotedAt).toBeGreaterThanOrEqual(promotion.faultAt);
    expect(await cluster.ownerOf('orders')).toBe(replica);
    expect(await role(before)).toBe('slave');
    expect(await cluster.replicaOf(replica)).toBe(before);
    expect(await allOk()).toBe(true);
  });

  it('killPrimaryOf: the replica is elected; restartNode brings the old primary back as its replica', async () => {
    const before = await cluster.ownerOf('orders');
    const pid = before.pid!;
    const promotion = await cluster.killPrimaryOf('orders');
    expect(promotion.oldOwner).toBe(before);
    expect(before.state).toBe('killed');
    expect(before.pid).toBeUndefined();
    expect(isAlive(pid)).toBe(false);
    expect(promotion.promotedAt).toBeGreaterThan(promotion.faultAt);
    expect(await cluster.ownerOf('orders')).toBe(promotion.newOwner);
    expect(await allOk()).toBe(true);

    await cluster.restartNode(before);
    expect(before.state).toBe('running');
    expect(before.role).toBe('replica');
    expect(await cluster.replicaOf(promotion.newOwner)).toBe(before);
    expect(await cluster.ownerOf('orders')).toBe(promotion.newOwner);
    expect(await allOk()).toBe(true);
  });

  it('pausePrimaryOf past the node timeout: the replica is elected; resume() makes the old primary its replica', async () => {
    const before = await cluster.ownerOf('orders');
    const paused = await cluster.pausePrimaryOf('orders');
    expect(paused.node).toBe(before);
    expect(before.state).toBe('paused');
    // A stopped process answers nothing: the harness' command times out.
    await expect(before.command('PING')).rejects.toThrow(/timed out/i);
    const { newOwner, promotedAt } = await paused.waitForPromotion();
    expect(newOwner).toBe(paused.replica);
    expect(promotedAt).toBeGreaterThan(paused.pausedAt);
    const resumed = await paused.resume();
    expect(resumed.electedMeanwhile).toBe(true);
    expect(resumed.owner).toBe(paused.replica);
    expect(before.state).toBe('running');
    expect(await role(before)).toBe('slave');
    expect(await cluster.replicaOf(paused.replica)).toBe(before);
    expect(await allOk()).toBe(true);
  });

  it.each([
    ['target-first', 0],
    ['source-first', 0],
    ['source-first', 300],
  ] as const)('migrateSlot %s (destination %d ms late): keys and ownership move, every node agrees', async (order, destinationDelayMs) => {
    const key = `migrating:{${order}-${destinationDelayMs}}`;
    const slot = cluster.slotOf(key);
    const from = await cluster.ownerOf(slot);
    await from.command('SET', key, 'kept');
    const to = (await cluster.primaries()).find((p) => p !== from)!;
    const migration = await cluster.migrateSlot(slot, { to, order, destinationDelayMs });
    expect(migration.from).toBe(from);
    expect(migration.to).toBe(to);
    expect(migration.keysMoved).toBe(1);
    if (order === 'target-first') expect(migration.destinationToldAt).toBeLessThanOrEqual(migration.sourceToldAt);
    else expect(migration.destinationToldAt - migration.sourceToldAt).toBeGreaterThanOrEqual(destinationDelayMs);
    expect(await cluster.ownerOf(key)).toBe(to);
    await expect(to.command('GET', key)).resolves.toBe('kept');
    await expect(from.command('GET', key)).rejects.toThrow(`MOVED ${slot} ${to.address}`);
    for (const node of cluster.nodes) {
      const view = await cluster.clusterNodes(node);
      const owner = view.find((e) => e.slots.some(([a, b]) => a <= slot && slot <= b));
      expect(owner?.id).toBe(to.id);
    }
    expect(await allOk()).toBe(true);
  });
});

describe('stop', () => {
  it('kills every node and removes every temp dir', async () => {
    const pids = cluster.nodes.map((n) => n.pid!);
    const dirs = cluster.nodes.map((n) => n.server.dir);
    expect(pids.every(isAlive)).toBe(true);
    await cluster.stop();
    expect(pids.filter(isAlive)).toEqual([]);
    expect(dirs.filter((d) => existsSync(d))).toEqual([]);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
