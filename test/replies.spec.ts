/**
 * Replies that always settle: a server never takes a reply for a request, a rejected reply fails its
 * request at once with the reason, a custom client deserializer sees every reply (binary ones too),
 * and close() ends never-completing request streams at once while it drains ordinary handlers.
 */
import 'reflect-metadata';
import { Controller, Logger, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientRedis, MessagePattern, Payload, Transport, type Deserializer, type IncomingResponse } from '@nestjs/microservices';
import { firstValueFrom, lastValueFrom, Observable } from 'rxjs';
import { Redis } from 'ioredis';
import { RedisPubSubClient, RedisPubSubServer } from '../lib/index.js';
import { closeClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { Gate } from './support/test-app.js';

const MiB = 1024 * 1024;

describe('replies', () => {
  let redis: RedisServerHandle;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  async function startApp(controller: new () => unknown, options: ConstructorParameters<typeof RedisPubSubServer>[0] = {}) {
    @Module({ controllers: [controller] })
    class AppModule {}
    const logger = new CaptureLogger();
    const server = new RedisPubSubServer({ url: redis.url, ...options });
    const app: INestMicroservice = await NestFactory.createMicroservice(AppModule, { strategy: server, logger });
    await app.listen();
    return { app, server, logger };
  }

  /** A responder written by hand against Redis: answers every request on `channel` with `reply(request)`. */
  async function startResponder(channel: string, reply: (request: { id: string; replyTo?: string; data: unknown }, channel: string) => [string, string | Buffer]) {
    const sub = new Redis(redis.port, redis.host);
    const pub = new Redis(redis.port, redis.host);
    sub.on('message', (ch: string, message: string) => {
      const request = JSON.parse(message) as { id: string; replyTo?: string; data: unknown };
      const [to, payload] = reply(request, ch);
      void pub.publish(to, payload);
    });
    await sub.subscribe(channel);
    return { close: async () => Promise.all([closeClient(sub), closeClient(pub)]) };
  }

  describe("a server never takes a reply for a request (Nest's built-in client, pattern handler)", () => {
    it('a PSUBSCRIBE request handler whose glob matches "<channel>.reply" runs once per request', async () => {
      const calls: unknown[] = [];
      @Controller()
      class JobsController {
        @MessagePattern('jobs.*', { psubscribe: true })
        run(@Payload() data: unknown) {
          calls.push(data);
          return 'done';
        }
      }
      const { app, logger } = await startApp(JobsController);
      const builtIn = new ClientRedis({ host: redis.host, port: redis.port });
      try {
        await builtIn.connect();
        await expect(firstValueFrom(builtIn.send('jobs.run', { job: 1 }))).resolves.toBe('done');
        // Published after the reply was received, so Redis delivers it to the server after any echo of that reply.
        await firstValueFrom(builtIn.emit('jobs.marker', 'marker'), { defaultValue: undefined });
        await waitFor(() => calls.includes('marker'), { message: 'marker handled' });
        expect(calls).toEqual([{ job: 1 }, 'marker']);
        expect(logger.errors(/./)).toEqual([]);
      } finally {
        await builtIn.close();
        await app.close();
      }
    });
  });

  describe('a reply the client rejects fails the request at once, with the reason', () => {
    it('the server refuses to publish a reply over maxPayloadBytes and tells the caller', async () => {
      @Controller()
      class BigController {
        @MessagePattern('big.reply')
        big() {
          return 'x'.repeat(2 * MiB);
        }
      }
      const { app, server, logger } = await startApp(BigController);
      // A timeout would say "timed out"; the test's own 60 s limit comes first anyway.
      const client = new RedisPubSubClient({ url: redis.url, requestTimeoutMs: 50_000 });
      try {
        await expect(firstValueFrom(client.send('big.reply', {}))).rejects.toEqual({
          status: 'error',
          message: expect.stringMatching(/^reply not sent: reply of \d+ bytes exceeds maxPayloadBytes \(1048576\)$/),
        });
        expect(logger.errors(/Handler for channel "big\.reply" failed: reply not sent: reply of \d+ bytes exceeds maxPayloadBytes/)).toHaveLength(1);
        expect(server.getStats().messages.handlerErrors).toBe(1);
      } finally {
        await client.close();
        await app.close();
      }
    });

    it('an oversize value in a stream ends the request and unsubscribes the stream', async () => {
      let tornDown = false;
      @Controller()
      class GrowingController {
        @MessagePattern('growing')
        growing(): Observable<string> {
          return new Observable<string>((observer) => {
            observer.next('small');
            observer.next('x'.repeat(2 * MiB));
            return () => (tornDown = true);
          });
        }
      }
      const { app, server } = await startApp(GrowingController);
      const client = new RedisPubSubClient({ url: redis.url, requestTimeoutMs: 50_000 });
      try {
        const values: unknown[] = [];
        let error: unknown;
        client.send('growing', {}).subscribe({ next: (v) => values.push(v), error: (e: unknown) => (error = e) });
        await waitFor(() => error !== undefined, { message: 'the caller got the error' });
        expect(values).toEqual(['small']);
        expect(error).toMatchObject({ status: 'error', message: expect.stringMatching(/^reply not sent: reply of \d+ bytes exceeds/) });
        await waitFor(() => tornDown, { message: 'stream unsubscribed' });
        expect(server.getStats().messages.handlerErrors).toBe(1);
      } finally {
        await client.close();
        await app.close();
      }
    });

    it("a 2 MiB reply from a Transport.REDIS server (on \"<channel>.reply\")", async () => {
      @Controller()
      class BuiltInBigController {
        @MessagePattern('builtin.big')
        big() {
          return 'x'.repeat(2 * MiB);
        }
      }
      @Module({ controllers: [BuiltInBigController] })
      class BuiltInModule {}
      const builtIn = await NestFactory.createMicroservice(BuiltInModule, {
        transport: Transport.REDIS,
        options: { host: redis.host, port: redis.port },
        logger: new CaptureLogger(),
      });
      await builtIn.listen();
      const client = new RedisPubSubClient({ url: redis.url, requestTimeoutMs: 50_000 });
      const logger = new CaptureLogger();
      Logger.overrideLogger(logger);
      try {
        await waitFor(async () => ((await redis.command('PUBSUB', 'NUMSUB', 'builtin.big')) as [string, number])[1] === 1, {
          message: 'the built-in server subscribed',
        });
        await expect(firstValueFrom(client.send('builtin.big', {}))).rejects.toThrow(
          /request to "builtin\.big" failed: reply rejected: payload of \d+ bytes exceeds maxPayloadBytes \(1048576\)/,
        );
        expect(logger.errors(/^Invalid reply on channel "builtin\.big\.reply": payload of \d+ bytes/)).toHaveLength(1);
      } finally {
        await client.close();
        await builtIn.close();
      }
    });

    it.each([
      ['a 2 MiB reply', (id: string) => JSON.stringify({ response: 'x'.repeat(2 * MiB), id }), /reply rejected: payload of \d+ bytes exceeds maxPayloadBytes \(1048576\)/],
      ['a reply with a "constructor" key', (id: string) => `{"response":{"constructor":{"prototype":1}},"id":"${id}"}`, /reply rejected: forbidden key "constructor"/],
      ['a reply with a "constructor" key, id first', (id: string) => `{"id":"${id}","response":{"constructor":1}}`, /reply rejected: forbidden key "constructor"/],
    ])('%s', async (_name, build, reason) => {
      const responder = await startResponder('rejected.reply', (request) => [request.replyTo!, build(request.id)]);
      const client = new RedisPubSubClient({ url: redis.url, requestTimeoutMs: 50_000, name: 'rejecting-client' });
      const logger = new CaptureLogger();
      Logger.overrideLogger(logger);
      try {
        await client.connect();
        await expect(firstValueFrom(client.send('rejected.reply', {}))).rejects.toThrow(reason);
        expect(logger.errors(/^Invalid reply on channel "__nestjs-redis-pubsub:reply:[^"]+": /)).toHaveLength(1);
        expect(client.getStats().messages.invalid).toBe(1);
        expect(client.getStats().pending?.requests).toBe(0);
      } finally {
        await client.close();
        await responder.close();
      }
    });
  });

  describe('a custom client deserializer sees every reply (port of Nest\'s binary-redis spec)', () => {
    /** Nest's BinaryDeserializer: `<id>:<channel>:<raw bytes>`. */
    class BinaryDeserializer implements Deserializer<Buffer, IncomingResponse> {
      deserialize(value: Buffer): IncomingResponse {
        const first = value.indexOf(':');
        const second = value.indexOf(':', first + 1);
        return { id: value.subarray(0, first).toString(), isDisposed: true, err: null, response: value.subarray(second + 1) };
      }
    }
    let responder: { close(): Promise<unknown> };
    let client: RedisPubSubClient;

    beforeAll(async () => {
      // A Nest-protocol responder: answers on "<channel>.reply", ignores replyTo.
      const sub = new Redis(redis.port, redis.host);
      const pub = new Redis(redis.port, redis.host);
      sub.on('message', (channel: string, message: string) => {
        const request = JSON.parse(message) as { id: string; data: string };
        const body = request.data === 'bytes' ? Buffer.from([0, 1, 2, 3, 255]) : Buffer.from(`${request.data}-replied`);
        const reply = Buffer.concat([Buffer.from(`${request.id}:${channel}:`), body]);
        // 'slow' is answered after the 'fast' request published after it.
        setTimeout(() => void pub.publish(`${channel}.reply`, reply), request.data === 'slow' ? 25 : 0);
      });
      await sub.subscribe('binary');
      responder = { close: () => Promise.all([closeClient(sub), closeClient(pub)]) };
      client = new RedisPubSubClient({ url: redis.url, deserializer: new BinaryDeserializer(), requestTimeoutMs: 50_000 });
      await client.connect();
    });

    afterAll(async () => {
      await client?.close();
      await responder?.close();
    });

    it('should return a raw binary payload', async () => {
      const data = await lastValueFrom(client.send('binary', 'data'));
      expect(Buffer.isBuffer(data)).toBe(true);
      expect(data).toEqual(Buffer.from('data-replied'));
    });

    it('should route concurrent raw binary replies to the matching request', async () => {
      const [slow, fast] = await Promise.all([lastValueFrom(client.send('binary', 'slow')), lastValueFrom(client.send('binary', 'fast'))]);
      expect(slow).toEqual(Buffer.from('slow-replied'));
      expect(fast).toEqual(Buffer.from('fast-replied'));
    });

    it('should preserve non-utf8 bytes in the raw binary payload', async () => {
      const data = await lastValueFrom(client.send('binary', 'bytes'));
      expect(data).toEqual(Buffer.from([0, 1, 2, 3, 255]));
    });

    it('hands JSON replies to the deserializer parsed, without needing a top-level "id"', async () => {
      // Opaque envelope: the id sits inside "meta", where only the deserializer knows to look.
      const opaque = await startResponder('opaque', (request) => [request.replyTo!, JSON.stringify({ meta: { ref: request.id }, body: request.data })]);
      const deserializer: Deserializer<{ meta: { ref: string }; body: unknown }, IncomingResponse> = {
        deserialize: (value) => ({ id: value.meta.ref, response: value.body, isDisposed: true, err: undefined }),
      };
      const custom = new RedisPubSubClient({ url: redis.url, deserializer, requestTimeoutMs: 50_000 });
      try {
        await expect(firstValueFrom(custom.send('opaque', { n: 1 }))).resolves.toEqual({ n: 1 });
      } finally {
        await custom.close();
        await opaque.close();
      }
    });
  });

  describe('close() and request streams', () => {
    it('drains a stream that has not emitted yet like any in-flight handler, up to closeTimeoutMs', async () => {
      let subscribed = false;
      @Controller()
      class SilentController {
        @MessagePattern('silent')
        silent(): Observable<number> {
          return new Observable<number>(() => {
            subscribed = true;
          });
        }
      }
      const { app, logger } = await startApp(SilentController, { closeTimeoutMs: 300 });
      const client = new RedisPubSubClient({ url: redis.url, requestTimeoutMs: 50_000 });
      try {
        let error: unknown;
        client.send('silent', {}).subscribe({ error: (e: unknown) => (error = e) });
        await waitFor(() => subscribed, { message: 'silent handler subscribed' });
        await app.close();
        expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.message)).toContain('close(): 1 handler(s) still running after 300 ms');
        expect(logger.lines.some((l) => l.message.includes('open request stream'))).toBe(false);
        expect(error).toBeUndefined();
      } finally {
        await client.close();
        await app.close();
      }
    });

    it('ends a never-completing stream at once (Nest broadcast), still drains an ordinary handler, then closes', async () => {
      const gate = new Gate();
      @Controller()
      class StreamsController {
        @MessagePattern('ticks')
        ticks(): Observable<number> {
          return new Observable((observer) => observer.next(1));
        }

        @MessagePattern('slow.sum')
        async slow(@Payload() numbers: number[]) {
          gate.entered = true;
          await gate.opened;
          return numbers.reduce((a, b) => a + b, 0);
        }
      }
      // A close that waited for the stream would hit the test's 60 s limit first.
      const { app, logger } = await startApp(StreamsController, { closeTimeoutMs: 120_000 });
      const client = new RedisPubSubClient({ url: redis.url, requestTimeoutMs: 120_000 });
      try {
        const ticks: unknown[] = [];
        let streamError: unknown;
        client.send('ticks', {}).subscribe({ next: (v) => ticks.push(v), error: (e: unknown) => (streamError = e) });
        await waitFor(() => ticks.length === 1, { message: 'first tick' });
        const slow = firstValueFrom(client.send('slow.sum', [1, 2]));
        await waitFor(() => gate.entered, { message: 'slow handler entered' });

        let closed = false;
        const closing = app.close().then(() => (closed = true));
        await waitFor(() => streamError !== undefined, { message: 'stream ended by close()' });
        expect(streamError).toEqual({ status: 'error', message: 'the stream was ended: the server is closing' });
        expect(closed).toBe(false); // the ordinary handler is still being drained
        gate.release();
        await expect(slow).resolves.toBe(3);
        await closing;
        expect(logger.lines.some((l) => l.message === 'close(): ended 1 open request stream(s)')).toBe(true);
        expect(logger.errors(/./)).toEqual([]);
      } finally {
        gate.release();
        await client.close();
        await app.close();
      }
    });
  });
});
