import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Controller, Module, type INestApplicationContext, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientRedis, ClientsModule, Ctx, EventPattern, MessagePattern, Payload, RpcException, Transport } from '@nestjs/microservices';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { Redis } from 'ioredis';
import { lastValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubContext, RedisPubSubServer, type RedisPubSubOptions } from '../lib/index.js';
import { closeClient, connectClient } from './harness/clients.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { FAST_HEARTBEAT, startFaultRig } from './support/fault-rig.js';
import { Inbox } from './support/inbox.js';
import { InMemoryTelemetry, type Collected } from './support/otel.js';
import { Gate } from './support/test-app.js';

const REPLY = '__nestjs-redis-pubsub:reply:{client}';
const SYSTEM = { 'messaging.system': 'redis' };

interface Apps {
  server: RedisPubSubServer;
  client: RedisPubSubClient;
  inbox: Inbox;
  logger: CaptureLogger;
  state: { gate?: Gate };
  close(): Promise<void>;
}

/** A server app and a client app (two Nest applications), as two services would be. */
async function startApps(
  url: string,
  options: RedisPubSubOptions = {},
  names = { server: 'tele-server', client: 'tele-client' },
  clientUrl = url,
): Promise<Apps> {
  const inbox = new Inbox();
  const state: { gate?: Gate } = {};
  const record = (handler: string, data: unknown, ctx: RedisPubSubContext) =>
    inbox.push({ handler, data, channel: ctx.getChannel(), pattern: ctx.getPattern(), metadata: ctx.getMetadata() });

  @Controller()
  class TelemetryController {
    @EventPattern<string>('tele.event')
    event(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      // The handler's own span must nest under the process span.
      trace.getTracer('app').startActiveSpan('app work', (span) => span.end());
      record('event', data, ctx);
    }

    @EventPattern<string>('telep.*', { psubscribe: true })
    pattern(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      record('pattern', data, ctx);
    }

    @EventPattern<string>('tele.fail')
    fail() {
      throw new Error('tele handler failed');
    }

    @EventPattern<string>('tele.slow')
    async slow(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      const gate = state.gate!;
      gate.entered = true;
      await gate.opened;
      record('slow', data, ctx);
    }

    @MessagePattern('tele.sum')
    sum(@Payload() numbers: number[]) {
      return numbers.reduce((a, b) => a + b, 0);
    }

    @MessagePattern('tele.reject')
    reject() {
      throw new RpcException('cannot compute');
    }

    @MessagePattern('tele.never')
    never() {
      return new Promise(() => undefined);
    }
  }
  @Module({ controllers: [TelemetryController] })
  class ServerModule {}
  @Module({ imports: [ClientsModule.register([{ name: 'EVENTS', customClass: RedisPubSubClient, options: { url: clientUrl, name: names.client, ...options } }])] })
  class ClientModule {}

  const logger = new CaptureLogger();
  const server = new RedisPubSubServer({ url, name: names.server, ...options });
  const serverApp: INestMicroservice = await NestFactory.createMicroservice(ServerModule, { strategy: server, logger });
  await serverApp.listen();
  const clientApp: INestApplicationContext = await NestFactory.createApplicationContext(ClientModule, { logger });
  const client = clientApp.get<RedisPubSubClient>('EVENTS');
  await client.connect();
  return {
    server,
    client,
    inbox,
    logger,
    state,
    async close() {
      await clientApp.close();
      await serverApp.close();
    },
  };
}

const emit = (client: RedisPubSubClient, pattern: string, data: unknown) => lastValueFrom(client.emit(pattern, data), { defaultValue: undefined });

function only(spans: ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((span) => span.name === name);
  expect(found.map((span) => span.name)).toEqual([name]);
  return found[0]!;
}

function expectChildOf(child: ReadableSpan, parent: ReadableSpan): void {
  expect(child.spanContext().traceId).toBe(parent.spanContext().traceId);
  expect(child.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
}

describe('OpenTelemetry tracing and metrics, against a real redis-server', () => {
  let telemetry: InMemoryTelemetry;
  let redis: RedisServerHandle;
  let apps: Apps;
  let direct: Redis;

  beforeAll(async () => {
    telemetry = new InMemoryTelemetry().register();
    redis = await startRedis();
    apps = await startApps(redis.url, { heartbeat: FAST_HEARTBEAT });
    direct = await connectClient(redis.url);
  });

  afterAll(async () => {
    await closeClient(direct);
    await apps?.close();
    await redis?.stop();
    await telemetry?.shutdown();
  });

  beforeEach(() => {
    telemetry.spans.reset();
    apps.inbox.items.length = 0;
  });

  describe('traces', () => {
    it('one emit() is one trace across two Nest apps: a PRODUCER send span, a CONSUMER process span, the handler inside it', async () => {
      await emit(apps.client, 'tele.event', { n: 1 });
      await waitFor(() => telemetry.named('app work').length === 1 && telemetry.named('process tele.event').length === 1, { message: 'spans' });
      const spans = telemetry.finished();
      const send = only(spans, 'send tele.event');
      const process = only(spans, 'process tele.event');
      expect(send.kind).toBe(SpanKind.PRODUCER);
      expect(process.kind).toBe(SpanKind.CONSUMER);
      expectChildOf(process, send);
      expect(process.links.map((link) => link.context.spanId)).toEqual([send.spanContext().spanId]);
      expectChildOf(only(spans, 'app work'), process);
      expect(send.attributes).toMatchObject({
        ...SYSTEM,
        'messaging.destination.name': 'tele.event',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
      });
      expect(process.attributes).toMatchObject({
        ...SYSTEM,
        'messaging.destination.name': 'tele.event',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
      });
      expect(process.attributes['messaging.message.body.size']).toBeGreaterThan(0);
      // W3C trace context travels in the envelope metadata.
      const { traceId, spanId } = send.spanContext();
      expect(apps.inbox.of('event')[0]!.metadata).toMatchObject({ traceparent: `00-${traceId}-${spanId}-01` });
    });

    it('a PSUBSCRIBE handler names its span after the glob (messaging.destination.template)', async () => {
      await emit(apps.client, 'telep.created', 'x');
      await waitFor(() => telemetry.named('process telep.*').length === 1, { message: 'pattern span' });
      const process = only(telemetry.finished(), 'process telep.*');
      expect(process.attributes).toMatchObject({ 'messaging.destination.template': 'telep.*', 'messaging.destination.name': 'telep.created' });
      expectChildOf(process, only(telemetry.finished(), 'send telep.created'));
    });

    it("keeps a sender's own traceparent in the metadata and links the send span to it", async () => {
      const own = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
      apps.client.setOnDispatchHook((packet) => (packet.metadata = { ...own }));
      try {
        await emit(apps.client, 'tele.event', 'own');
        await waitFor(() => apps.inbox.of('event').length === 1, { message: 'delivered' });
      } finally {
        apps.client.setOnDispatchHook(() => undefined);
      }
      expect(apps.inbox.of('event')[0]!.metadata).toMatchObject(own);
      await waitFor(() => telemetry.named('process tele.event').length === 1, { message: 'process span' });
      const send = only(telemetry.finished(), 'send tele.event');
      expect(send.links.map((link) => link.context.spanId)).toEqual(['b7ad6b7169203331']);
      expect(only(telemetry.finished(), 'process tele.event').spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    });

    it('a request is one trace: send, process, the reply sent on the temporary reply channel, and the reply processed', async () => {
      await expect(lastValueFrom(apps.client.send('tele.sum', [1, 2]))).resolves.toBe(3);
      const names = ['send tele.sum', 'process tele.sum', `send ${REPLY}`, `process ${REPLY}`];
      await waitFor(() => names.every((name) => telemetry.named(name).length === 1), { message: 'four spans' });
      const spans = telemetry.finished();
      const [send, process, reply, replyProcess] = names.map((name) => only(spans, name));
      expectChildOf(process!, send!);
      expectChildOf(reply!, process!);
      expectChildOf(replyProcess!, send!);
      expect(reply!.kind).toBe(SpanKind.PRODUCER);
      expect(replyProcess!.kind).toBe(SpanKind.CONSUMER);
      const id = send!.attributes['messaging.message.id'];
      expect(typeof id).toBe('string');
      for (const span of [process!, reply!, replyProcess!]) expect(span.attributes['messaging.message.conversation_id']).toBe(id);
      for (const span of [reply!, replyProcess!]) {
        expect(span.attributes).toMatchObject({ 'messaging.destination.temporary': true, 'messaging.destination.template': REPLY });
        expect(String(span.attributes['messaging.destination.name'])).toMatch(/^__nestjs-redis-pubsub:reply:[0-9a-f-]{36}$/);
      }
    });

    it('records a failing event handler on its process span', async () => {
      await emit(apps.client, 'tele.fail', {});
      await waitFor(() => telemetry.named('process tele.fail').length === 1, { message: 'process span' });
      const process = only(telemetry.finished(), 'process tele.fail');
      // What reaches the transport is what Nest's exception filter made of the error: it hides an
      // unknown error's message (an RpcException's message is kept, see below), and logs the original.
      expect(process.status).toEqual({ code: SpanStatusCode.ERROR, message: 'Internal server error' });
      expect(process.attributes['error.type']).toBe('_OTHER');
      await waitFor(() => apps.logger.errors('tele handler failed').length > 0, { message: 'original error logged' });
      expect(apps.logger.errors('Handler for channel "tele.fail" failed').length).toBeGreaterThan(0);
    });

    it('records a failing request handler on its process span', async () => {
      await expect(lastValueFrom(apps.client.send('tele.reject', {}))).rejects.toMatchObject({ message: 'cannot compute' });
      await waitFor(() => telemetry.named('process tele.reject').length === 1, { message: 'process span' });
      const process = only(telemetry.finished(), 'process tele.reject');
      expect(process.status).toEqual({ code: SpanStatusCode.ERROR, message: 'cannot compute' });
      expect(process.attributes['error.type']).toBe('_OTHER');
    });
  });

  describe("interop with Nest's built-in Redis transport", () => {
    it('a Transport.REDIS server handles events carrying trace context in metadata', async () => {
      const inbox = new Inbox();
      @Controller()
      class BuiltIn {
        @EventPattern<string>('legacy.traced')
        handle(@Payload() data: unknown) {
          inbox.push({ handler: 'legacy', data, channel: 'legacy.traced', pattern: undefined, metadata: undefined });
        }
      }
      @Module({ controllers: [BuiltIn] })
      class BuiltInModule {}
      const app = await NestFactory.createMicroservice(BuiltInModule, { transport: Transport.REDIS, options: { host: redis.host, port: redis.port }, logger: apps.logger });
      await app.listen();
      try {
        await waitFor(async () => ((await direct.call('PUBSUB', 'NUMSUB', 'legacy.traced')) as [string, number])[1] === 1, { message: 'built-in subscribed' });
        await emit(apps.client, 'legacy.traced', { n: 7 });
        await inbox.waitFor((items) => items.length === 1);
        expect(inbox.items[0]!.data).toEqual({ n: 7 });
        expect(telemetry.named('send legacy.traced')).toHaveLength(1);
      } finally {
        await app.close();
      }
    });

    it('answers ClientRedis requests (no trace context) with a root process span and a reply span', async () => {
      const builtIn = new ClientRedis({ host: redis.host, port: redis.port });
      try {
        await builtIn.connect();
        await expect(lastValueFrom(builtIn.send('tele.sum', [20, 22]))).resolves.toBe(42);
        await waitFor(() => telemetry.named('send tele.sum.reply').length === 1, { message: 'reply span' });
        const process = only(telemetry.finished(), 'process tele.sum');
        expect(process.parentSpanContext).toBeUndefined();
        expectChildOf(only(telemetry.finished(), 'send tele.sum.reply'), process);
      } finally {
        await builtIn.close();
      }
    });
  });

  describe('metrics', () => {
    const server = { 'redis_pubsub.instance': 'tele-server' };
    const client = { 'redis_pubsub.instance': 'tele-client' };

    it('messages sent, consumed, and their durations move per message', async () => {
      const event = { 'messaging.destination.name': 'tele.event' };
      const before = await telemetry.collect();
      await emit(apps.client, 'tele.event', 1);
      await waitFor(() => apps.inbox.of('event').length === 1, { message: 'delivered' });
      const after = await waitForMetrics(telemetry, (m) => m.value('messaging.process.duration', event) > before.value('messaging.process.duration', event));
      const sent = { ...event, ...client, 'messaging.operation.name': 'send' };
      const consumed = { ...event, ...server, 'messaging.operation.name': 'process' };
      expect(after.value('messaging.client.sent.messages', sent) - before.value('messaging.client.sent.messages', sent)).toBe(1);
      expect(after.value('messaging.client.operation.duration', sent) - before.value('messaging.client.operation.duration', sent)).toBe(1);
      expect(after.value('messaging.client.consumed.messages', consumed) - before.value('messaging.client.consumed.messages', consumed)).toBe(1);
      expect(after.value('messaging.process.duration', consumed) - before.value('messaging.process.duration', consumed)).toBe(1);
      expect(after.metric('messaging.process.duration')?.descriptor.unit).toBe('s');
    });

    it('handler errors: counted, and the failed message carries error.type', async () => {
      const failed = { 'messaging.destination.name': 'tele.fail', 'error.type': '_OTHER' };
      const before = await telemetry.collect();
      await emit(apps.client, 'tele.fail', {});
      const after = await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.handler.errors', server) > before.value('redis_pubsub.handler.errors', server));
      expect(after.value('redis_pubsub.handler.errors', server) - before.value('redis_pubsub.handler.errors', server)).toBe(1);
      expect(after.value('messaging.client.consumed.messages', failed) - before.value('messaging.client.consumed.messages', failed)).toBe(1);
    });

    it('invalid messages are counted', async () => {
      const before = await telemetry.collect();
      await direct.publish('tele.event', JSON.stringify({ data: { ['__proto__']: 1 } }).replace('"data":{', '"data":{"__proto__":1,'));
      const after = await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.messages.invalid', server) > before.value('redis_pubsub.messages.invalid', server));
      expect(after.value('redis_pubsub.messages.invalid', server) - before.value('redis_pubsub.messages.invalid', server)).toBe(1);
      expect(apps.logger.errors('Invalid message on channel "tele.event"').length).toBeGreaterThan(0);
    });

    it('lost and duplicate events of our clients are counted', async () => {
      const stamped = (s: number) => JSON.stringify({ pattern: 'tele.event', data: s, metadata: { 'redisPubSub.position': { p: 'tele-publisher', s } } });
      const before = await telemetry.collect();
      await direct.publish('tele.event', stamped(1));
      await direct.publish('tele.event', stamped(3)); // 2 never arrived
      await direct.publish('tele.event', stamped(3)); // a repeat
      const after = await waitForMetrics(
        telemetry,
        (m) => m.value('redis_pubsub.messages.duplicates', server) > before.value('redis_pubsub.messages.duplicates', server),
      );
      expect(after.value('redis_pubsub.messages.lost', server) - before.value('redis_pubsub.messages.lost', server)).toBe(1);
      expect(after.value('redis_pubsub.messages.duplicates', server) - before.value('redis_pubsub.messages.duplicates', server)).toBe(1);
      expect(apps.inbox.of('event').map((item) => item.data)).toEqual([1, 3]);
    });

    it('in-flight handlers and pending requests go up and down', async () => {
      apps.state.gate = new Gate();
      await emit(apps.client, 'tele.slow', 's');
      await waitFor(() => apps.state.gate!.entered, { message: 'slow handler entered' });
      const request = lastValueFrom(apps.client.send('tele.never', {}));
      const subscription = apps.client.send('tele.never', {}).subscribe({ error: () => undefined });
      request.catch(() => undefined);
      const busy = await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.requests.pending', client) === 2 && m.value('redis_pubsub.handlers.in_flight', server) >= 1);
      expect(busy.value('redis_pubsub.handlers.in_flight', server)).toBeGreaterThanOrEqual(1);
      apps.state.gate.release();
      subscription.unsubscribe();
      await waitFor(() => apps.inbox.of('slow').length === 1, { message: 'slow handler done' });
      const idle = await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.requests.pending', client) === 1);
      expect(idle.value('redis_pubsub.requests.pending', client)).toBe(1);
    });

    it('connection state, transport state, subscriptions and heartbeat RTT are observed per instance', async () => {
      const m = await waitForMetrics(telemetry, (c) => c.has('redis_pubsub.heartbeat.rtt', { ...server, 'redis_pubsub.connection': 'subscriber' }));
      for (const connection of ['subscriber', 'publisher']) {
        expect(m.value('redis_pubsub.connection.state', { ...server, 'redis_pubsub.connection': connection, 'redis_pubsub.state': 'connected' })).toBe(1);
        expect(m.value('redis_pubsub.connection.state', { ...server, 'redis_pubsub.connection': connection, 'redis_pubsub.state': 'reconnecting' })).toBe(0);
      }
      expect(m.value('redis_pubsub.state', { ...client, 'redis_pubsub.state': 'connected' })).toBe(1);
      // tele.event, tele.fail, tele.slow, tele.sum, tele.reject, tele.never, telep.*, and the probe channel.
      expect(m.value('redis_pubsub.subscriptions.expected', server)).toBe(8);
      expect(m.value('redis_pubsub.subscriptions.confirmed', server)).toBe(8);
      expect(m.metric('redis_pubsub.heartbeat.rtt')?.descriptor.unit).toBe('s');
    });
  });

  it('lifecycle: reconnects, resubscription, offline queue, heartbeat timeouts and probe failures show up as spans and metrics', async () => {
    // One proxy per app, so the server can be back (resubscribed) before the client flushes its queue.
    const proxy = await FaultProxy.start({ host: redis.host, port: redis.port });
    const clientProxy = await FaultProxy.start({ host: redis.host, port: redis.port });
    const names = { server: 'fault-server', client: 'fault-client' };
    const faulty = await startApps(proxy.url, { heartbeat: FAST_HEARTBEAT }, names, clientProxy.url);
    const server = { 'redis_pubsub.instance': names.server };
    const client = { 'redis_pubsub.instance': names.client };
    const fresh = await startRedis();
    try {
      const before = await telemetry.collect();
      telemetry.spans.reset();

      // Down: connections reset and refused until we let them back.
      for (const p of [proxy, clientProxy]) {
        p.refuse(true);
        p.reset();
      }
      const down = await waitForMetrics(
        telemetry,
        (m) =>
          m.value('redis_pubsub.connection.state', { ...server, 'redis_pubsub.connection': 'subscriber', 'redis_pubsub.state': 'reconnecting' }) === 1 &&
          m.value('redis_pubsub.connection.state', { ...client, 'redis_pubsub.connection': 'publisher', 'redis_pubsub.state': 'reconnecting' }) === 1,
      );
      expect(down.value('redis_pubsub.state', { ...server, 'redis_pubsub.state': 'reconnecting' })).toBe(1);
      expect(down.value('redis_pubsub.subscriptions.confirmed', server)).toBe(0);
      const queued = emit(faulty.client, 'tele.event', 'while down');
      const held = await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.offline_queue.depth', client) === 1);
      expect(held.value('redis_pubsub.offline_queue.depth', client)).toBe(1);

      proxy.refuse(false);
      await waitFor(() => faulty.server.getStats().state === 'connected', { message: 'server resubscribed' });
      clientProxy.refuse(false);
      await queued;
      await waitFor(() => faulty.inbox.of('event').length === 1, { message: 'queued event delivered' });
      const back = await waitForMetrics(
        telemetry,
        (m) =>
          m.value('redis_pubsub.connection.reconnects', { ...server, 'redis_pubsub.connection': 'subscriber' }) === 1 &&
          m.value('redis_pubsub.subscriptions.confirmed', server) === m.value('redis_pubsub.subscriptions.expected', server) &&
          m.value('redis_pubsub.resubscribe.duration', server) > before.value('redis_pubsub.resubscribe.duration', server),
      );
      expect(back.value('redis_pubsub.connection.reconnects', { ...server, 'redis_pubsub.connection': 'publisher' })).toBe(1);
      expect(back.value('redis_pubsub.offline_queue.depth', client)).toBe(0);
      await waitFor(() => telemetry.named('redis-pubsub resubscribe').some((s) => s.attributes['redis_pubsub.instance'] === names.server), { message: 'resubscribe span' });
      const reconnects = telemetry.named('redis-pubsub reconnect').filter((s) => s.attributes['redis_pubsub.instance'] === names.server);
      expect(reconnects.map((s) => s.attributes['redis_pubsub.connection']).sort()).toEqual(['publisher', 'subscriber']);
      const resubscribe = telemetry.named('redis-pubsub resubscribe').find((s) => s.attributes['redis_pubsub.instance'] === names.server)!;
      expect(resubscribe.attributes).toMatchObject({ 'redis_pubsub.channels': 7, 'redis_pubsub.patterns': 1, 'redis_pubsub.failed': [] });

      // Silent death: caught by the heartbeat.
      const timeoutsBefore = back.value('redis_pubsub.heartbeat.timeouts', server);
      proxy.blackhole();
      await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.heartbeat.timeouts', server) > timeoutsBefore, 20_000);
      await waitFor(() => telemetry.named('redis-pubsub heartbeat timeout').length > 0, { message: 'heartbeat timeout span' });
      expect(telemetry.named('redis-pubsub heartbeat timeout')[0]!.status.code).toBe(SpanStatusCode.ERROR);
      await waitFor(() => faulty.server.getStats().state === 'connected', { timeoutMs: 20_000, message: 'recovered from blackhole' });

      // Moved to another Redis: PING works, the subscriptions are gone; caught by the path probe.
      const probeBefore = (await telemetry.collect()).value('redis_pubsub.probe.failures', server);
      await proxy.reroute({ host: fresh.host, port: fresh.port });
      await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.probe.failures', server) > probeBefore, 20_000);
      await waitFor(() => telemetry.named('redis-pubsub probe failed').some((s) => s.attributes['redis_pubsub.instance'] === names.server), {
        message: 'probe failed span',
      });
    } finally {
      await faulty.close();
      await proxy.close();
      await clientProxy.close();
      await fresh.stop();
    }
  });

  it('make-before-break: a suspect connection, its resumption and a cut-over show up as spans and metrics', async () => {
    const rig = await startFaultRig({ name: 'mbb-tele' });
    const subscriber = { 'redis_pubsub.instance': 'mbb-tele', 'redis_pubsub.connection': 'subscriber' };
    const state = (s: string) => ({ ...subscriber, 'redis_pubsub.state': s });
    const spans = (name: string) => telemetry.named(`redis-pubsub ${name}`).filter((s) => s.attributes['redis_pubsub.instance'] === 'mbb-tele' && s.attributes['redis_pubsub.connection'] === 'subscriber');
    const reasons: string[] = [];
    rig.app.server.on('suspect', ({ connection, reason }) => connection === 'subscriber' && reasons.push(reason));
    try {
      // Every connection partitioned, new ones too: suspected, and no replacement can be ready.
      const partition = rig.proxy.partition({ newConnections: true });
      const suspect = await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.connection.state', state('suspect')) === 1, 20_000);
      expect(suspect.value('redis_pubsub.connection.state', state('connected'))).toBe(0);
      expect(suspect.value('redis_pubsub.connection.suspects', subscriber)).toBe(1);
      expect(reasons).toHaveLength(1);
      expect(spans('suspect').map((s) => s.attributes['redis_pubsub.reason'])).toEqual(reasons);

      // Healed before a replacement could be ready: the suspect shows life again and is kept.
      partition.heal();
      await waitFor(() => rig.events.includes('resumed:subscriber'), { message: `resumed; events: ${rig.events.join(', ')}` });
      const resumed = await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.suspect.duration', { ...subscriber, 'redis_pubsub.outcome': 'resumed' }) === 1);
      expect(resumed.value('redis_pubsub.suspect.duration', { ...subscriber, 'redis_pubsub.outcome': 'cut-over' })).toBe(0);
      expect(resumed.metric('redis_pubsub.suspect.duration')?.descriptor.unit).toBe('s');
      const [resumedSpan] = spans('resumed');
      expect(resumedSpan?.attributes['redis_pubsub.suspect_for_ms']).toEqual(expect.any(Number));
      expect(resumedSpan!.status.code).toBe(SpanStatusCode.UNSET);

      // The subscriber socket dies silently for good: its replacement takes over.
      rig.proxy.blackhole({ match: 'mbb-tele:sub' });
      await waitFor(() => rig.events.includes('cut-over:subscriber'), { timeoutMs: 20_000, message: `cut over; events: ${rig.events.join(', ')}` });
      const cutOver = await waitForMetrics(telemetry, (m) => m.value('redis_pubsub.suspect.duration', { ...subscriber, 'redis_pubsub.outcome': 'cut-over' }) === 1);
      // Suspected again (a probe that went missing meanwhile may suspect the new socket too).
      expect(cutOver.value('redis_pubsub.connection.suspects', subscriber)).toBeGreaterThanOrEqual(2);
      expect(spans('suspect').map((s) => s.attributes['redis_pubsub.reason'])).toEqual(reasons);
      const [cutOverSpan] = spans('cut-over');
      // The span covers the time the old socket was suspect.
      const durationMs = cutOverSpan!.duration[0] * 1e3 + cutOverSpan!.duration[1] / 1e6;
      expect(Math.round(durationMs)).toBe(cutOverSpan!.attributes['redis_pubsub.suspect_for_ms']);
    } finally {
      await rig.close();
    }
  });

  it('a closed transport is observed as closed (not as its last state) until one of the same name replaces it', async () => {
    const short = (state: string) => ({ 'redis_pubsub.instance': 'short-server', 'redis_pubsub.state': state });
    const extra = await startApps(redis.url, {}, { server: 'short-server', client: 'short-client' });
    expect((await telemetry.collect()).value('redis_pubsub.state', short('connected'))).toBe(1);
    await extra.close();
    const closed = await telemetry.collect();
    expect(closed.value('redis_pubsub.state', short('connected'))).toBe(0);
    expect(closed.value('redis_pubsub.state', short('closed'))).toBe(1);
    const again = await startApps(redis.url, {}, { server: 'short-server', client: 'short-client' });
    try {
      expect((await telemetry.collect()).value('redis_pubsub.state', short('connected'))).toBe(1);
    } finally {
      await again.close();
    }
  });

  it('a closed transport does not hide a running one of the same name', async () => {
    const twin = (state: string) => ({ 'redis_pubsub.instance': 'twin-client', 'redis_pubsub.state': state });
    const first = new RedisPubSubClient({ url: redis.url, name: 'twin-client' });
    const second = new RedisPubSubClient({ url: redis.url, name: 'twin-client' });
    try {
      await first.connect();
      await second.connect();
      await second.close();
      const m = await telemetry.collect();
      expect(m.value('redis_pubsub.state', twin('connected'))).toBe(1);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('the main entry imports @opentelemetry/api for types only: at run time it is loaded lazily, when installed', () => {
    const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
    const seen = new Set<string>();
    const runtime: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const match of source.matchAll(/(?:^|\n)\s*(import|export)(\s+type)?\s[^'"]*?from\s+['"]([^'"]+)['"]/g)) {
        const specifier = match[3]!;
        if (specifier.startsWith('.')) visit(join(dirname(file), specifier.replace(/\.js$/, '.ts')));
        else if (specifier.startsWith('@opentelemetry/') && !match[2]) runtime.push(`${file}: ${specifier}`);
      }
    };
    visit(join(root, 'lib/index.ts'));
    expect([...seen].some((file) => file.endsWith(join('telemetry', 'otel-api.ts')))).toBe(true);
    expect(runtime).toEqual([]);
  });
});

/** Collects until `ready` holds (metrics are read at collection time, so this polls with a deadline). */
async function waitForMetrics(telemetry: InMemoryTelemetry, ready: (m: Collected) => boolean, timeoutMs = 10_000): Promise<Collected> {
  let last: Collected | undefined;
  await waitFor(
    async () => {
      last = await telemetry.collect();
      return ready(last);
    },
    { timeoutMs, message: 'metrics' },
  );
  return last!;
}
