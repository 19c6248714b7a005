import { createRequire } from 'node:module';
import { keySlot, tagForSlots } from '../lib/cluster/key-slot.js';
import { describeSlots, parseClusterNodes, resolveSlotMap, slotsServedBy } from '../lib/cluster/slot-map.js';
import { globToRegExp } from '../lib/cluster/glob.js';

// ioredis' own slot function: ours must agree with it (and with Redis) on every name.
const clusterKeySlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

describe('hash slots', () => {
  test('agree with cluster-key-slot, hash tags and multi-byte names included', () => {
    const names = ['inbound', 'orders.created', '{user1000}.following', 'foo{{bar}}zap', 'a{b}c', '{', '}{', 'été', '日本語{タグ}', ''];
    for (let i = 0; i < 2000; i++) names.push(`channel:${i}:${(i * 7919).toString(36)}`);
    for (const name of names) expect([name, keySlot(name)]).toEqual([name, clusterKeySlot(name)]);
  });

  test('an empty first hash tag hashes the whole name, as Redis does (cluster-key-slot 1.1.1 does not)', () => {
    // redis-cli CLUSTER KEYSLOT on Redis 7.0.15: foo{}{bar} 8363, foo{{bar}}zap 4015.
    expect(keySlot('foo{}{bar}')).toBe(8363);
    expect(keySlot('foo{{bar}}zap')).toBe(4015);
  });

  test('a tag pinned to a set of slots hashes into it', () => {
    const slots = new Set([5461, 5462, 9000]);
    expect(slots.has(keySlot(`__x:probe:${tagForSlots(slots)}`))).toBe(true);
    expect(() => tagForSlots(new Set())).toThrow('no hash slot');
  });
});

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const line = (id: string, address: string, flags: string, epoch: number, slots = '') =>
  `${id} ${address}@1${address.split(':')[1]} ${flags} - 0 0 ${epoch} connected ${slots}`.trim();

describe('the slot map, from every node that answered', () => {
  test('parses CLUSTER NODES, skipping migration markers and nodes without an address', () => {
    const text = [
      line(A, '127.0.0.1:7001', 'myself,master', 1, '0-2 5 [6->-' + B + ']'),
      line(B, ':0', 'master,noaddr', 2, '7'),
      line(C, '127.0.0.1:7003', 'slave', 1),
    ].join('\n');
    const lines = parseClusterNodes(text, '10.0.0.1:7001');
    expect(lines.map((l) => [l.address, l.myself, l.primary, l.slots])).toEqual([
      ['127.0.0.1:7001', true, true, [0, 1, 2, 5]],
      ['127.0.0.1:7003', false, false, []],
    ]);
  });

  test('a failover: the promoted replica (higher config epoch) wins over what others still say of the dead primary', () => {
    // The dead primary A does not answer; C's view is stale (still A), B says of itself it took the slots.
    const fromB = parseClusterNodes([line(B, '127.0.0.1:7002', 'myself,master', 7, '0-99'), line(A, '127.0.0.1:7001', 'master,fail', 3, '')].join('\n'), '127.0.0.1:7002');
    const fromC = parseClusterNodes([line(C, '127.0.0.1:7003', 'myself,master', 2, '100-199'), line(A, '127.0.0.1:7001', 'master', 3, '0-99')].join('\n'), '127.0.0.1:7003');
    const map = resolveSlotMap([fromC, fromB]);
    expect(map.owners[0]).toBe('127.0.0.1:7002');
    expect(map.owners[150]).toBe('127.0.0.1:7003');
    expect(describeSlots(slotsServedBy(map, '127.0.0.1:7002'))).toBe('0-99');
  });

  test('a primary that does not answer (hung, dead) is taken at the word of the views that know it', () => {
    const fromC = parseClusterNodes([line(C, '127.0.0.1:7003', 'myself,master', 2, '100-199'), line(A, '127.0.0.1:7001', 'master', 3, '0-99')].join('\n'), '127.0.0.1:7003');
    expect(resolveSlotMap([fromC]).owners[42]).toBe('127.0.0.1:7001');
  });

  test('a migration, source told first: nobody claims the slot until the destination is told', () => {
    // A gave slot 5 away (its own view names B); B has not been told yet; C's view is stale (still A).
    const fromA = parseClusterNodes([line(A, '127.0.0.1:7001', 'myself,master', 3, '0-4'), line(B, '127.0.0.1:7002', 'master', 4, '5 100-199')].join('\n'), '127.0.0.1:7001');
    const fromB = parseClusterNodes([line(B, '127.0.0.1:7002', 'myself,master', 4, '100-199'), line(A, '127.0.0.1:7001', 'master', 3, '0-5')].join('\n'), '127.0.0.1:7002');
    const fromC = parseClusterNodes([line(C, '127.0.0.1:7003', 'myself,master', 2, '200-299'), line(A, '127.0.0.1:7001', 'master', 3, '0-5')].join('\n'), '127.0.0.1:7003');
    expect(resolveSlotMap([fromA, fromB, fromC]).owners[5]).toBeUndefined();
    // Then B is told (SETSLOT NODE bumps its config epoch): B serves it.
    const told = parseClusterNodes([line(B, '127.0.0.1:7002', 'myself,master', 8, '5 100-199')].join('\n'), '127.0.0.1:7002');
    expect(resolveSlotMap([fromA, told, fromC]).owners[5]).toBe('127.0.0.1:7002');
  });

  test('a migration, destination told first: its bumped config epoch wins over the source that still claims the slot', () => {
    const fromA = parseClusterNodes(line(A, '127.0.0.1:7001', 'myself,master', 3, '0-5'), '127.0.0.1:7001');
    const fromB = parseClusterNodes(line(B, '127.0.0.1:7002', 'myself,master', 8, '5 100-199'), '127.0.0.1:7002');
    expect(resolveSlotMap([fromA, fromB]).owners[5]).toBe('127.0.0.1:7002');
    expect(resolveSlotMap([fromA, fromB]).owners[4]).toBe('127.0.0.1:7001');
  });
});

describe('globalChannels globs', () => {
  test.each([
    ['orders.*', 'orders.created', true],
    ['orders.*', 'order.created', false],
    ['h?llo', 'hallo', true],
    ['h[ae]llo', 'hillo', false],
    ['h[^e]llo', 'hallo', true],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'axb', false],
    ['x.y', 'xzy', false],
  ])('%s matches %s: %s', (glob, channel, expected) => {
    expect(globToRegExp(glob).test(channel)).toBe(expected);
  });
});
