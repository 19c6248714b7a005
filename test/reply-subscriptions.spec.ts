/**
 * The client's "<channel>.reply" subscriptions: how it hears Nest-protocol responders without
 * bringing back the fan-out of every reply to every client of this transport's servers.
 */
import 'reflect-metadata';
import { Controller, Logger, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubStatus } from '../lib/index.js';
import { IDLE_REPLY_CHANNELS } from '../lib/reply-subscriptions.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

const PASSWORD = 'acl-pw-123';

@Controller()
class SumController {
  @MessagePattern('sum.builtin')
  sum(@Payload() numbers: number[]) {
    return numbers.reduce((a, b) => a + b, 0);
  }
}

@Module({ controllers: [SumController] })
class BuiltInModule {}

describe('"<channel>.reply" subscriptions of RedisPubSubClient', () => {
  let redis: RedisServerHandle;
  let builtIn: INestMicroservice;
  let ours: StartedTestApp;
  const logger = new CaptureLogger();

  beforeAll(async () => {
    redis = await startRedis();
    builtIn = await NestFactory.createMicroservice(BuiltInModule, {
      transport: Transport.REDIS,
      options: { host: redis.host, port: redis.port },
      logger: new CaptureLogger(),
    });
    await builtIn.listen();
    ours = await startTestApp({ url: redis.url, closeTimeoutMs: 200 });
    await waitFor(async () => ((await redis.command('PUBSUB', 'NUMSUB', 'sum.builtin')) as [string, number])[1] === 1, {
      message: 'the built-in server subscribed',
    });
    Logger.overrideLogger(logger);
  });

  afterAll(async () => {
    await ours?.close();
    await builtIn?.close();
    await redis?.stop();
  });

  it('is resubscribed after the subscriber reconnects: a Transport.REDIS server is still heard', async () => {
    const client = new RedisPubSubClient({ url: redis.url, name: 'reconnecting-client' });
    try {
      await expect(firstValueFrom(client.send('sum.builtin', [1, 2]))).resolves.toBe(3);
      const list = (await redis.command('CLIENT', 'LIST')) as string;
      const id = /id=(\d+) [^\n]*name=reconnecting-client:sub /.exec(list)?.[1];
      expect(id).toBeDefined();
      let resubscribed = 0;
      client.on('resubscribed', () => resubscribed++);
      await redis.command('CLIENT', 'KILL', 'ID', id!);
      await waitFor(() => resubscribed > 0 && client.getStats().state === RedisPubSubStatus.CONNECTED, { message: 'resubscribed' });
      expect(client.getStats().subscriptions.missing).toEqual([]);
      await expect(firstValueFrom(client.send('sum.builtin', [3, 4]))).resolves.toBe(7);
    } finally {
      await client.close();
    }
  });

  it("carries no reply of this transport's servers: they answer on the requester's own channel only", async () => {
    const a = new RedisPubSubClient({ url: redis.url, name: 'client-a' });
    const b = new RedisPubSubClient({ url: redis.url, name: 'client-b' });
    try {
      // Both now listen on "math.sum.reply".
      await Promise.all([firstValueFrom(a.send('math.sum', [1])), firstValueFrom(b.send('math.sum', [1]))]);
      expect(((await redis.command('PUBSUB', 'NUMSUB', 'math.sum.reply')) as [string, number])[1]).toBe(2);
      const bReceived = b.getStats().messages.received;
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => firstValueFrom(a.send('math.sum', [i, 1]))));
      expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(b.getStats().messages.received).toBe(bReceived);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps at most IDLE_REPLY_CHANNELS idle ones, dropping the least recently used, never one in use', async () => {
    const client = new RedisPubSubClient({ url: redis.url, name: 'many-channels', requestTimeoutMs: 50_000 });
    const replyChannels = async () => ((await redis.command('PUBSUB', 'CHANNELS', '*.reply')) as string[]).sort();
    try {
      await expect(firstValueFrom(client.send('math.sum', [1, 1]))).resolves.toBe(2);
      // Stays pending (the handler never answers): its reply channel is in use throughout.
      const never = firstValueFrom(client.send('math.never', {})).catch((error: Error) => error);
      await waitFor(async () => (await replyChannels()).includes('math.never.reply'), { message: 'math.never.reply subscribed' });
      const extra = IDLE_REPLY_CHANNELS + 5;
      for (let i = 0; i < extra; i += 50) {
        const batch = Array.from({ length: Math.min(50, extra - i) }, (_, k) => firstValueFrom(client.send(`nobody.${i + k}`, 1)).catch((e: Error) => e));
        for (const error of await Promise.all(batch)) expect(String(error)).toMatch(/no subscriber for pattern "nobody\.\d+"/);
      }
      await waitFor(async () => (await replyChannels()).length === IDLE_REPLY_CHANNELS, { message: `${IDLE_REPLY_CHANNELS} reply channels left` });
      const left = await replyChannels();
      expect(left).toContain('math.never.reply');
      expect(left).not.toContain('math.sum.reply');
      expect(left).toContain(`nobody.${extra - 1}.reply`);
      expect(client.getStats().subscriptions).toMatchObject({ expected: IDLE_REPLY_CHANNELS + 2, missing: [] });
      expect(client.getStats().state).toBe(RedisPubSubStatus.CONNECTED);
      await expect(firstValueFrom(client.send('math.sum', [2, 2]))).resolves.toBe(4);
      await client.close();
      expect(String(await never)).toMatch(/the client was closed/);
    } finally {
      await client.close();
    }
  });

  it('when Redis refuses one (ACL), warns once, stays connected, and still gets replies on its own channel', async () => {
    await redis.command('ACL', 'SETUSER', 'limited', 'reset', 'on', `>${PASSWORD}`, '~*', 'resetchannels', '&math.sum', '&__nestjs-redis-pubsub:*', '+@all');
    const client = new RedisPubSubClient({ url: `redis://limited:${PASSWORD}@127.0.0.1:${redis.port}`, name: 'limited-client' });
    try {
      await expect(firstValueFrom(client.send('math.sum', [2, 3]))).resolves.toBe(5);
      await expect(firstValueFrom(client.send('math.sum', [4, 5]))).resolves.toBe(9);
      const warnings = logger.lines.filter((l) => l.level === 'warn' && l.message.includes('"math.sum.reply"'));
      expect(warnings).toHaveLength(1);
      // ioredis rejects a refused SUBSCRIBE with Redis' own error reply (ReplyError), which the client relies on.
      expect(warnings[0]!.message).toMatch(/Redis refused SUBSCRIBE "math\.sum\.reply" \(NOPERM/);
      expect(warnings[0]!.message).not.toContain(PASSWORD);
      expect(client.getStats().state).toBe(RedisPubSubStatus.CONNECTED);
      expect(client.getStats().subscriptions.missing).toEqual([]);
    } finally {
      await client.close();
    }
  });
});
