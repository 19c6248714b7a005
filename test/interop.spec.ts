import 'reflect-metadata';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientRedis, Ctx, EventPattern, Payload, RedisContext, Transport } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../lib/index.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { Inbox } from './support/inbox.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

describe("interop with Nest's built-in Redis transport (Transport.REDIS)", () => {
  let redis: RedisServerHandle;
  let ours: StartedTestApp;

  beforeAll(async () => {
    redis = await startRedis();
    ours = await startTestApp({ url: redis.url });
  });

  afterAll(async () => {
    await ours?.close();
    await redis?.stop();
  });

  it('handles events emitted by ClientRedis', async () => {
    const builtIn = new ClientRedis({ host: redis.host, port: redis.port });
    try {
      await builtIn.connect();
      await firstValueFrom(builtIn.emit('inbound', { from: 'built-in' }));
      await ours.inbox.waitFor((items) => items.some((i) => i.handler === 'inbound'));
      expect(ours.inbox.of('inbound')[0]).toMatchObject({ data: { from: 'built-in' }, channel: 'inbound' });
    } finally {
      await builtIn.close();
    }
  });

  it('answers requests sent by ClientRedis on its "<pattern>.reply" channel', async () => {
    const builtIn = new ClientRedis({ host: redis.host, port: redis.port });
    try {
      await builtIn.connect();
      await expect(firstValueFrom(builtIn.send('math.sum', [20, 22]))).resolves.toBe(42);
    } finally {
      await builtIn.close();
    }
  });

  it('emits events that ServerRedis handlers receive', async () => {
    const inbox = new Inbox();
    @Controller()
    class BuiltInController {
      @EventPattern<string>('legacy.event')
      handle(@Payload() data: unknown, @Ctx() ctx: RedisContext) {
        inbox.push({ handler: 'legacy', data, channel: ctx.getChannel(), pattern: undefined, metadata: undefined });
      }
    }
    @Module({ controllers: [BuiltInController] })
    class BuiltInModule {}
    const app: INestMicroservice = await NestFactory.createMicroservice(BuiltInModule, {
      transport: Transport.REDIS,
      options: { host: redis.host, port: redis.port },
      logger: new CaptureLogger(),
    });
    await app.listen();
    const client = new RedisPubSubClient({ url: redis.url });
    try {
      // ServerRedis resolves listen() before its SUBSCRIBE is acknowledged: wait until Redis counts it.
      await waitForSubscriber(redis, 'legacy.event');
      await firstValueFrom(client.emit('legacy.event', { from: 'us' }));
      await inbox.waitFor((items) => items.length === 1);
      expect(inbox.items[0]).toMatchObject({ data: { from: 'us' }, channel: 'legacy.event' });
    } finally {
      await client.close();
      await app.close();
    }
  });
});

async function waitForSubscriber(redis: RedisServerHandle, channel: string): Promise<void> {
  await waitFor(async () => {
    const [, count] = (await redis.command('PUBSUB', 'NUMSUB', channel)) as [string, number];
    return count > 0;
  }, { message: `a subscriber on ${channel}` });
}
