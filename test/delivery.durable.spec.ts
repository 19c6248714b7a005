import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, Payload, Transport } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import type { Redis } from 'ioredis';
import { RedisPubSubClient, RedisPubSubServer } from '../lib/index.js';
import { durableKeys } from '../lib/delivery/durable-stream.js';
import { POSITION_KEY } from '../lib/delivery/position.js';
import { closeClient, connectClient } from './harness/clients.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT } from './support/fault-rig.js';
import { CaptureLogger } from './support/capture-logger.js';
import { DURABLE_CHANNEL, startDurableApp, type DurableApp } from './support/durable-app.js';
import { Inbox } from './support/inbox.js';
import { listen } from './support/transport-utils.js';

const emit = (client: RedisPubSubClient, n: number, channel = DURABLE_CHANNEL) => firstValueFrom(client.emit(channel, { n }), { defaultValue: undefined });

describe('durable channels against a real redis-server', () => {
  let redis: RedisServerHandle;
  let proxy: FaultProxy;
  let app: DurableApp | undefined;
  let client: RedisPubSubClient;
  let direct: Redis;

  beforeEach(async () => {
    redis = await startRedis();
    proxy = await FaultProxy.start({ host: redis.host, port: redis.port });
    direct = await connectClient(redis.url);
    client = new RedisPubSubClient({ url: redis.url, heartbeat: false, durable: { [DURABLE_CHANNEL]: { maxLen: 1_000 } } });
    await client.connect();
  });

  afterEach(async () => {
    await client.close();
    await app?.close();
    app = undefined;
    await closeClient(direct);
    await proxy.close();
    await redis.stop();
  });

  it('appends each event to a capped stream and publishes it with its stream position, one script call; emit() resolves to the receiver count', async () => {
    app = await startDurableApp({ url: redis.url, heartbeat: FAST_HEARTBEAT });
    const receivers = [];
    for (let n = 1; n <= 5; n++) receivers.push(await emit(client, n));
    await app.inbox.waitFor((items) => items.length === 5);
    expect(app.handled()).toEqual([1, 2, 3, 4, 5]);
    expect(receivers).toEqual([1, 1, 1, 1, 1]);
    expect(await direct.xlen(durableKeys(DURABLE_CHANNEL).stream)).toBe(5);
    const { epoch, offset } = await direct.hgetall(durableKeys(DURABLE_CHANNEL).meta);
    expect(offset).toBe('5');
    const positions = app.inbox.items.map((i) => (i.metadata![POSITION_KEY] as { d: string }).d);
    expect(positions.map((d) => d.split(':').slice(0, 2).join(':'))).toEqual([1, 2, 3, 4, 5].map((o) => `${epoch}:${o}`));
    const ids = (await direct.xrange(durableKeys(DURABLE_CHANNEL).stream, '-', '+')).map(([id]) => id);
    // Live events carry their stream id too: the exclusive start of the next catch-up read.
    expect(positions).toEqual(ids.map((id, i) => `${epoch}:${i + 1}:${id}`));
    expect(app.events.recovered).toEqual([]);
  });

  it('stream and meta share the hash slot of the channel (Redis Cluster-ready keys)', async () => {
    const slot = async (key: string) => Number(await direct.call('CLUSTER', 'KEYSLOT', key).catch(() => -1));
    // CLUSTER KEYSLOT needs cluster mode: compute the tag ourselves instead.
    expect(await slot('x')).toBe(-1);
    expect(durableKeys('orders.created')).toEqual({
      stream: '__nestjs-redis-pubsub:durable:{orders.created}',
      meta: '__nestjs-redis-pubsub:durable-meta:{orders.created}',
    });
    expect(durableKeys('{tenant-1}.orders').stream).toBe('__nestjs-redis-pubsub:durable:{tenant-1}.orders');
  });

  it('replays what was published while the subscriber was away, in order, before newer live events, then reports recovered', async () => {
    app = await startDurableApp({ url: proxy.url, heartbeat: FAST_HEARTBEAT, name: 'durable-away' });
    for (let n = 1; n <= 3; n++) await emit(client, n);
    await app.inbox.waitFor((items) => items.length === 3);
    proxy.refuse(true);
    proxy.reset();
    await waitFor(() => app!.server.getStats().state === 'reconnecting', { message: 'reconnecting' });
    for (let n = 4; n <= 50; n++) await emit(client, n);
    proxy.refuse(false);
    await waitFor(() => app!.events.recovered.some((r) => r.replayed > 0), { message: 'recovered' });
    expect(app.events.recovered.map((r) => r.reason)).toEqual(['resubscribed']);
    for (let n = 51; n <= 60; n++) await emit(client, n);
    await app.inbox.waitFor((items) => items.length >= 60);
    expect(app.handled()).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(app.events.recovered.reduce((sum, r) => sum + r.replayed, 0)).toBe(47);
    expect(app.events.unrecoverable).toEqual([]);
    expect(app.events.gaps).toEqual([]);
    expect(app.server.getStats().messages).toMatchObject({ lost: 0, duplicates: 0 });
  });

  it('a range trimmed past retention is reported unrecoverable with the exact count; the rest is replayed in order', async () => {
    await client.close();
    client = new RedisPubSubClient({ url: redis.url, heartbeat: false, durable: { [DURABLE_CHANNEL]: { maxLen: 10 } } });
    app = await startDurableApp({ url: proxy.url, heartbeat: FAST_HEARTBEAT, name: 'durable-trimmed' });
    await emit(client, 1);
    await app.inbox.waitFor((items) => items.length === 1);
    proxy.refuse(true);
    proxy.reset();
    await waitFor(() => app!.server.getStats().state === 'reconnecting', { message: 'reconnecting' });
    for (let n = 2; n <= 1_000; n++) void emit(client, n);
    await emit(client, 1_001);
    const retained = await direct.xlen(durableKeys(DURABLE_CHANNEL).stream);
    expect(retained).toBeLessThan(1_000);
    proxy.refuse(false);
    await waitFor(() => app!.events.recovered.some((r) => r.replayed > 0), { message: 'recovered' });
    await app.inbox.waitFor((items) => items.length === 1 + retained);
    const handled = app.handled();
    expect(handled).toEqual([1, ...Array.from({ length: retained }, (_, i) => 1_001 - retained + 1 + i)]);
    expect(app.events.unrecoverable).toEqual([{ channel: DURABLE_CHANNEL, missed: 1_000 - retained, reason: 'trimmed' }]);
    expect(app.server.getStats().messages.lost).toBe(1_000 - retained);
    expect(app.server.getStats().delivery!.recentLosses.at(-1)).toMatchObject({ kind: 'unrecoverable', channel: DURABLE_CHANNEL, missed: 1_000 - retained });
    expect(app.logger.lines.some((l) => l.level === 'warn' && l.message.includes(`Cannot recover ${1_000 - retained} event(s) on durable channel "${DURABLE_CHANNEL}"`))).toBe(true);
  });

  it('maxAgeMs trims by age (in whole stream nodes of ~100 entries), and the server reports the trimmed range', async () => {
    await client.close();
    client = new RedisPubSubClient({ url: redis.url, heartbeat: false, durable: { [DURABLE_CHANNEL]: { maxLen: 100_000, maxAgeMs: 300 } } });
    app = await startDurableApp({ url: proxy.url, heartbeat: FAST_HEARTBEAT, name: 'durable-aged' });
    await emit(client, 1);
    await app.inbox.waitFor((items) => items.length === 1);
    proxy.refuse(true);
    proxy.reset();
    await waitFor(() => app!.server.getStats().state === 'reconnecting', { message: 'reconnecting' });
    for (let n = 2; n <= 250; n++) await emit(client, n);
    const publishedAt = Date.now();
    await waitFor(() => Date.now() - publishedAt > 400, { message: 'older than maxAgeMs' });
    await emit(client, 251);
    const retained = await direct.xlen(durableKeys(DURABLE_CHANNEL).stream);
    expect(retained).toBeLessThan(251);
    proxy.refuse(false);
    await app.inbox.waitFor((items) => items.length === 1 + retained);
    expect(app.handled()).toEqual([1, ...Array.from({ length: retained }, (_, i) => 251 - retained + 1 + i)]);
    expect(app.events.unrecoverable).toEqual([{ channel: DURABLE_CHANNEL, missed: 250 - retained, reason: 'trimmed' }]);
  });

  it('first start is "from now": earlier events are not replayed, but events missed before the first live one are', async () => {
    for (let n = 1; n <= 3; n++) await emit(client, n);
    app = await startDurableApp({ url: proxy.url, heartbeat: FAST_HEARTBEAT, name: 'durable-fresh' });
    // The anchor (current end of the stream) is read right after listen(); a reconnect before any live event replays from it.
    await waitFor(() => app!.server.getStats().state === 'connected');
    proxy.refuse(true);
    proxy.reset();
    await waitFor(() => app!.server.getStats().state === 'reconnecting', { message: 'reconnecting' });
    for (let n = 4; n <= 6; n++) await emit(client, n);
    proxy.refuse(false);
    await app.inbox.waitFor((items) => items.length === 3);
    await emit(client, 7);
    await app.inbox.waitFor((items) => items.length === 4);
    expect(app.handled()).toEqual([4, 5, 6, 7]);
    expect(app.events.unrecoverable).toEqual([]);
  });

  it('drops an event appended twice (the same stamped event re-sent) and a live copy of a replayed event', async () => {
    app = await startDurableApp({ url: redis.url, heartbeat: FAST_HEARTBEAT });
    await emit(client, 1);
    await app.inbox.waitFor((items) => items.length === 1);
    // Re-run the publish of event 1's envelope: a new offset, the same publisher sequence.
    const [[, fields]] = await direct.xrange(durableKeys(DURABLE_CHANNEL).stream, '-', '+', 'COUNT', 1);
    const stored = JSON.parse(fields[1]) as { metadata: Record<string, { p: string; s: number; d: string }> };
    const { epoch } = await direct.hgetall(durableKeys(DURABLE_CHANNEL).meta);
    stored.metadata[POSITION_KEY].d = `${epoch}:2`;
    const id = await direct.xadd(durableKeys(DURABLE_CHANNEL).stream, '*', 'm', JSON.stringify(stored));
    await direct.hset(durableKeys(DURABLE_CHANNEL).meta, 'offset', 2);
    stored.metadata[POSITION_KEY].d = `${epoch}:2:${id}`;
    await direct.publish(DURABLE_CHANNEL, JSON.stringify(stored));
    await emit(client, 2);
    await app.inbox.waitFor((items) => items.length >= 2);
    expect(app.handled()).toEqual([1, 2]);
    expect(app.server.getStats().messages).toMatchObject({ duplicates: 1, lost: 0 });
  });

  it('keeps publishing after SCRIPT FLUSH (EVALSHA falls back to EVAL: an ioredis behaviour this relies on)', async () => {
    app = await startDurableApp({ url: redis.url, heartbeat: FAST_HEARTBEAT });
    await emit(client, 1);
    await direct.call('SCRIPT', 'FLUSH');
    await emit(client, 2);
    await app.inbox.waitFor((items) => items.length === 2);
    expect(app.handled()).toEqual([1, 2]);
  });

  it('warns once when a durable handler receives events its publisher did not make durable, and still delivers them', async () => {
    app = await startDurableApp({ url: redis.url, heartbeat: FAST_HEARTBEAT });
    const plain = new RedisPubSubClient({ url: redis.url, heartbeat: false });
    try {
      await emit(plain, 1);
      await emit(plain, 2);
    } finally {
      await plain.close();
    }
    await app.inbox.waitFor((items) => items.length === 2);
    const warnings = app.logger.lines.filter((l) => l.level === 'warn' && l.message.includes('without a stream position'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0].message).toContain(`"${DURABLE_CHANNEL}"`);
  });

  it('refuses durable on a pattern handler at listen()', async () => {
    const server = new RedisPubSubServer({ url: redis.url, heartbeat: false });
    const handler = Object.assign(async () => undefined, { isEventHandler: true, extras: { psubscribe: true, durable: true } });
    server.addHandler('orders.*', handler, true, { psubscribe: true, durable: true });
    try {
      await expect(listen(server)).rejects.toThrow('"orders.*": durable needs a channel, not a pattern');
    } finally {
      await server.close();
    }
    expect(handler).toBeDefined();
  });

  it("Nest's built-in Transport.REDIS handles durable events as plain ones (the position is only metadata)", async () => {
    const inbox = new Inbox();
    @Controller()
    class BuiltInController {
      @EventPattern<string>(DURABLE_CHANNEL)
      handle(@Payload() data: unknown) {
        inbox.push({ handler: 'built-in', data, channel: DURABLE_CHANNEL, pattern: undefined, metadata: undefined });
      }
    }
    @Module({ controllers: [BuiltInController] })
    class BuiltInModule {}
    const builtIn = await NestFactory.createMicroservice(BuiltInModule, { transport: Transport.REDIS, options: { host: redis.host, port: redis.port }, logger: new CaptureLogger() });
    await builtIn.listen();
    try {
      // ServerRedis resolves listen() before its SUBSCRIBE is acknowledged: wait until Redis counts it.
      await waitFor(async () => ((await direct.call('PUBSUB', 'NUMSUB', DURABLE_CHANNEL)) as [string, number])[1] > 0);
      await emit(client, 1);
      await emit(client, 2);
      await inbox.waitFor((items) => items.length === 2);
      expect(inbox.items.map((i) => i.data)).toEqual([{ n: 1 }, { n: 2 }]);
    } finally {
      await builtIn.close();
    }
  });

  it('rejects bad retention options with the option named', () => {
    expect(() => new RedisPubSubClient({ durable: { x: { maxLen: 0 } } })).toThrow('option "durable["x"].maxLen" must be a whole number from 1, got 0');
    expect(() => new RedisPubSubClient({ durable: { x: { maxAgeMs: -1 } } })).toThrow('option "durable["x"].maxAgeMs" must be a whole number from 1, got -1');
    expect(() => new RedisPubSubClient({ durable: { x: 'orders' as never } })).toThrow('option "durable["x"]" must be an object');
  });
});
