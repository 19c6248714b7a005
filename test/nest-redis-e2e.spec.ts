/**
 * NestJS's own Redis integration specs (integration/microservices: sum-redis, broadcast-redis) ported
 * to this transport and run in every direction a fleet passes through while it migrates:
 * this client -> Nest's built-in server, Nest's built-in client -> this server, and ours <-> ours.
 */
import 'reflect-metadata';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientRedis, EventPattern, MessagePattern, Payload, Transport, type ClientProxy } from '@nestjs/microservices';
import { firstValueFrom, from, lastValueFrom, Observable, of, scan, take, toArray } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer } from '../lib/index.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';

type Side = 'ours' | 'built-in';

interface Received {
  notified: unknown[];
  numericEvents: unknown[];
}

function createMathController(received: Received) {
  // Nest's RedisController and RedisBroadcastController, plus numeric patterns (a legal MsPattern).
  @Controller()
  class MathController {
    @MessagePattern({ cmd: 'sum' })
    sum(@Payload() data: number[]): number {
      return (data || []).reduce((a, b) => a + b);
    }

    @MessagePattern({ cmd: 'asyncSum' })
    async asyncSum(@Payload() data: number[]): Promise<number> {
      return (data || []).reduce((a, b) => a + b);
    }

    @MessagePattern({ cmd: 'streamSum' })
    streamSum(@Payload() data: number[]): Observable<number> {
      return of((data || []).reduce((a, b) => a + b));
    }

    @MessagePattern({ cmd: 'streaming' })
    streaming(@Payload() data: number[]): Observable<number> {
      return from(data);
    }

    @MessagePattern({ cmd: 'broadcast' })
    replyBroadcast(): Observable<number> {
      return new Observable((observer) => observer.next(1));
    }

    @MessagePattern(42)
    double(@Payload() n: number): number {
      return n * 2;
    }

    @EventPattern<string>('notification')
    notification(@Payload() data: unknown) {
      received.notified.push(data);
    }

    @EventPattern(7)
    numericEvent(@Payload() data: unknown) {
      received.numericEvents.push(data);
    }
  }
  return MathController;
}

/** The channels the controller listens on (Nest's normalized patterns). */
const CHANNELS = ['{"cmd":"sum"}', '{"cmd":"asyncSum"}', '{"cmd":"streamSum"}', '{"cmd":"streaming"}', '{"cmd":"broadcast"}', '42', 'notification', '7'];

async function startServer(side: Side, redis: RedisServerHandle, received: Received): Promise<INestMicroservice> {
  @Module({ controllers: [createMathController(received)] })
  class MathModule {}
  const logger = new CaptureLogger();
  const app =
    side === 'ours'
      ? await NestFactory.createMicroservice(MathModule, { strategy: new RedisPubSubServer({ url: redis.url }), logger })
      : await NestFactory.createMicroservice(MathModule, { transport: Transport.REDIS, options: { host: redis.host, port: redis.port }, logger });
  await app.listen();
  return app;
}

// Pick: under strictFunctionTypes Nest 12's ClientRedis is not assignable to ClientProxy<..., string> (its status type is narrower).
function createClient(side: Side, redis: RedisServerHandle): Pick<ClientProxy, 'send' | 'emit'> & { connect(): Promise<unknown>; close(): Promise<unknown> } {
  return side === 'ours' ? new RedisPubSubClient({ url: redis.url, requestTimeoutMs: 20_000 }) : new ClientRedis({ host: redis.host, port: redis.port });
}

/** ServerRedis resolves listen() before its SUBSCRIBEs are acknowledged: wait until Redis counts `servers` subscribers on each. */
async function waitForSubscribers(redis: RedisServerHandle, servers: number): Promise<void> {
  await waitFor(
    async () => {
      const counts = (await redis.command('PUBSUB', 'NUMSUB', ...CHANNELS)) as Array<string | number>;
      return counts.filter((_, i) => i % 2 === 1).every((count) => Number(count) >= servers);
    },
    { message: `${servers} subscriber(s) on every channel` },
  );
}

const DIRECTIONS: Array<[string, Side, Side]> = [
  ['RedisPubSubClient -> Transport.REDIS server', 'ours', 'built-in'],
  ['ClientRedis -> RedisPubSubServer', 'built-in', 'ours'],
  ['RedisPubSubClient -> RedisPubSubServer', 'ours', 'ours'],
];

describe.each(DIRECTIONS)("Nest's Redis e2e specs: %s", (_name, clientSide, serverSide) => {
  let redis: RedisServerHandle;
  let servers: INestMicroservice[];
  let client: ReturnType<typeof createClient>;
  let received: Received;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  beforeEach(async () => {
    received = { notified: [], numericEvents: [] };
    servers = [await startServer(serverSide, redis, received)];
    await waitForSubscribers(redis, 1);
    client = createClient(clientSide, redis);
    await client.connect();
  });

  afterEach(async () => {
    await client?.close();
    for (const server of servers) await server.close();
  });

  const sum = (cmd: string, data: number[]) => lastValueFrom(client.send<number>({ cmd }, data));

  it('/POST (sum)', async () => {
    await expect(sum('sum', [1, 2, 3, 4, 5])).resolves.toBe(15);
  });

  it('/POST (Promise/async)', async () => {
    await expect(sum('asyncSum', [1, 2, 3, 4, 5])).resolves.toBe(15);
  });

  it('/POST (Observable stream)', async () => {
    await expect(sum('streamSum', [1, 2, 3, 4, 5])).resolves.toBe(15);
  });

  it('/POST (streaming): every value of a several-value reply, in order, then completion', async () => {
    const values = await lastValueFrom(client.send<number>({ cmd: 'streaming' }, [1, 2, 3, 4, 5]).pipe(toArray()));
    expect(values).toEqual([1, 2, 3, 4, 5]);
    await expect(lastValueFrom(client.send<number>({ cmd: 'streaming' }, [1, 2, 3, 4, 5]).pipe(scan((a, b) => a + b)))).resolves.toBe(15);
  });

  it('/POST (concurrent): each reply reaches its own request', async () => {
    const tabs = Array.from({ length: 10 }, (_, t) => Array.from({ length: 10 }, (_, k) => t * 10 + k + 1));
    const results = await Promise.all(tabs.map((tab) => sum('sum', tab)));
    expect(results).toEqual(tabs.map((tab) => tab.reduce((a, b) => a + b)));
  });

  it('disposed stream: a caller that stops after two values frees the request, the next one works', async () => {
    await expect(lastValueFrom(client.send<number>({ cmd: 'streaming' }, [1, 2, 3, 4, 5]).pipe(take(2), toArray()))).resolves.toEqual([1, 2]);
    await expect(sum('sum', [1, 2])).resolves.toBe(3);
    if (client instanceof RedisPubSubClient) expect(client.getStats().pending?.requests).toBe(0);
  });

  it('/POST (event notification)', async () => {
    await firstValueFrom(client.emit('notification', true), { defaultValue: undefined });
    await waitFor(() => received.notified.length === 1, { message: 'notification handled' });
    expect(received.notified).toEqual([true]);
  });

  it('numeric patterns: a request and an event', async () => {
    await expect(firstValueFrom(client.send<number>(42, 21))).resolves.toBe(42);
    await firstValueFrom(client.emit(7, 'seven'), { defaultValue: undefined });
    await waitFor(() => received.numericEvents.length === 1, { message: 'numeric event handled' });
    expect(received.numericEvents).toEqual(['seven']);
  });

  it('Broadcast (2 subscribers): both servers answer one request', async () => {
    servers.push(await startServer(serverSide, redis, received));
    await waitForSubscribers(redis, 2);
    const total = await lastValueFrom(
      client.send<number>({ cmd: 'broadcast' }, {}).pipe(
        scan((a, b) => a + b),
        take(2),
      ),
    );
    expect(total).toBe(2);
  });
});
