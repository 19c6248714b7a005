import { firstValueFrom } from 'rxjs';
import type { Redis } from 'ioredis';
import { RedisPubSubClient, type GapInfo } from '../lib/index.js';
import { POSITION_KEY } from '../lib/delivery/position.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { delay, waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT } from './support/fault-rig.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

const stamped = (data: unknown, p: string, s: number, pattern = 'inbound') => JSON.stringify({ pattern, data, metadata: { [POSITION_KEY]: { p, s } } });

describe('gap and duplicate detection (always on) against a real redis-server', () => {
  let redis: RedisServerHandle;
  let app: StartedTestApp;
  let direct: Redis;
  let gaps: GapInfo[];

  beforeEach(async () => {
    redis = await startRedis();
    app = await startTestApp({ url: redis.url, heartbeat: FAST_HEARTBEAT, name: 'gaps' });
    direct = await connectClient(redis.url);
    gaps = [];
    app.server.on('gap', (info) => gaps.push(info));
  });

  afterEach(async () => {
    await closeClient(direct);
    await app?.close();
    await redis?.stop();
  });

  it('reports a gap with the exact missing count when the subscriber is killed and reconnects while a client keeps publishing', async () => {
    const client = new RedisPubSubClient({ url: redis.url, heartbeat: FAST_HEARTBEAT, name: 'steady' });
    await client.connect();
    let resubscribed = false;
    app.server.on('resubscribed', () => (resubscribed = true));
    let sent = 0;
    let killedAt = 0;
    let stop = false;
    // Sequence-numbered events at a steady rate, through the fault and until well after recovery.
    const publishing = (async () => {
      while (!stop) {
        const n = ++sent;
        await firstValueFrom(client.emit('inbound', { n }), { defaultValue: undefined });
        await delay(2);
      }
    })();
    try {
      await app.inbox.waitFor((items) => items.length >= 20, 'first events');
      await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
      killedAt = sent;
      // Published after Redis dropped the subscriber: these are certainly lost.
      await waitFor(() => sent >= killedAt + 5, { message: 'events published while the subscriber is gone' });
      await waitFor(() => resubscribed, { message: 'resubscribed' });
      const back = sent;
      await app.inbox.waitFor((items) => items.some((i) => (i.data as { n: number }).n > back + 20), 'events after recovery');
    } finally {
      stop = true;
      await publishing;
      await client.close();
    }
    await app.inbox.waitFor((items) => (items.at(-1)?.data as { n: number }).n === sent, 'the last event');
    const handled = app.inbox.of('inbound').map((i) => (i.data as { n: number }).n);
    // In order, no duplicates.
    expect(handled).toEqual([...handled].sort((a, b) => a - b));
    expect(new Set(handled).size).toBe(handled.length);
    const lost = sent - handled.length;
    expect(lost).toBeGreaterThan(0);
    expect(gaps.reduce((sum, gap) => sum + gap.missed, 0)).toBe(lost);
    expect(gaps.every((gap) => gap.channel === 'inbound' && gap.pattern === undefined)).toBe(true);
    const stats = app.server.getStats();
    expect(stats.messages.lost).toBe(lost);
    expect(stats.messages.duplicates).toBe(0);
    expect(stats.delivery!.recentLosses.at(-1)).toMatchObject({ kind: 'gap', channel: 'inbound', missed: gaps.at(-1)!.missed });
    expect(app.logger.lines.filter((l) => l.level === 'warn' && /Lost \d+ event\(s\) on channel "inbound"/.test(l.message)).length).toBeGreaterThan(0);
  });

  it('drops a re-sent duplicate and an older position before the handler, and counts them', async () => {
    await direct.publish('inbound', stamped('first', 'pub-a', 1));
    await direct.publish('inbound', stamped('first', 'pub-a', 1));
    await direct.publish('inbound', stamped('second', 'pub-a', 2));
    await direct.publish('inbound', stamped('first again', 'pub-a', 1));
    await direct.publish('inbound', stamped('third', 'pub-a', 3));
    await app.inbox.waitFor((items) => items.some((i) => i.data === 'third'));
    expect(app.inbox.of('inbound').map((i) => i.data)).toEqual(['first', 'second', 'third']);
    expect(app.server.getStats().messages).toMatchObject({ duplicates: 2, lost: 0 });
    expect(gaps).toEqual([]);
  });

  it('a restarted publisher (new id) starts afresh: no false gap and no false duplicate', async () => {
    for (const round of [1, 2]) {
      const client = new RedisPubSubClient({ url: redis.url, heartbeat: false });
      for (let n = 1; n <= 3; n++) await firstValueFrom(client.emit('inbound', { round, n }), { defaultValue: undefined });
      await client.close();
    }
    await app.inbox.waitFor((items) => items.length === 6);
    expect(app.server.getStats().messages).toMatchObject({ duplicates: 0, lost: 0 });
    expect(gaps).toEqual([]);
  });

  it('a channel and a pattern subscription matching it each get the event once, with their own positions', async () => {
    const client = new RedisPubSubClient({ url: redis.url, heartbeat: false });
    try {
      for (let n = 1; n <= 3; n++) await firstValueFrom(client.emit('orders.created', { n }), { defaultValue: undefined });
    } finally {
      await client.close();
    }
    await app.inbox.waitFor((items) => items.filter((i) => i.handler === 'any-order').length === 3 && items.filter((i) => i.handler === 'created').length === 3);
    expect(app.server.getStats().messages).toMatchObject({ duplicates: 0, lost: 0 });
  });

  it('a gap seen through a pattern subscription names the pattern', async () => {
    await direct.publish('orders.shipped', stamped('a', 'pub-p', 1, 'orders.shipped'));
    await direct.publish('orders.shipped', stamped('b', 'pub-p', 4, 'orders.shipped'));
    await waitFor(() => gaps.length === 1, { message: 'gap event' });
    expect(gaps).toEqual([{ channel: 'orders.shipped', pattern: 'orders.*', publisher: 'pub-p', missed: 2 }]);
  });

  it('events without a position pass as before; a malformed position is rejected, logged with the channel and counted', async () => {
    await direct.publish('inbound', 'raw text');
    await direct.publish('inbound', JSON.stringify({ pattern: 'inbound', data: 'bad', metadata: { [POSITION_KEY]: { p: 'x', s: -1 } } }));
    await direct.publish('inbound', JSON.stringify({ pattern: 'inbound', data: 'plain', metadata: { traceId: 't' } }));
    await app.inbox.waitFor((items) => items.some((i) => i.data === 'plain'));
    expect(app.inbox.of('inbound').map((i) => i.data)).toEqual(['raw text', 'plain']);
    expect(app.server.getStats().messages.invalid).toBe(1);
    expect(app.logger.errors(`Invalid message on channel "inbound": metadata "${POSITION_KEY}" is malformed`)).toHaveLength(1);
  });
});
