import 'reflect-metadata';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { RedisPubSubContext, RedisPubSubServer, type RedisPubSubOptions } from '../../lib/index.js';
import { CaptureLogger } from './capture-logger.js';
import { Inbox } from './inbox.js';

export const DURABLE_CHANNEL = 'orders.durable';

/** Every transport event of the delivery guarantees, in order. */
export interface DeliveryEvents {
  recovered: Array<{ channel: string; replayed: number; reason: string }>;
  unrecoverable: Array<{ channel: string; missed: number; reason: string; publisher?: string }>;
  gaps: Array<{ channel: string; missed: number }>;
  resubscribed: number;
  /** Subscriber replacements that took over while the old socket was silent (make before break). */
  cutOvers: number;
}

export interface DurableApp {
  app: INestMicroservice;
  server: RedisPubSubServer;
  inbox: Inbox;
  logger: CaptureLogger;
  events: DeliveryEvents;
  /** The `n` of every event handled on the durable channel, in handling order. */
  handled(): number[];
  close(): Promise<void>;
}

/** A Nest microservice with a durable handler on `orders.durable` and plain ones on `orders.plain` and `noise`. */
export async function startDurableApp(options: RedisPubSubOptions): Promise<DurableApp> {
  const inbox = new Inbox();
  @Controller()
  class DurableController {
    @EventPattern<string>(DURABLE_CHANNEL, { durable: true })
    durable(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      inbox.push({ handler: 'durable', data, channel: ctx.getChannel(), pattern: undefined, metadata: ctx.getMetadata() });
    }

    @EventPattern<string>('orders.plain')
    plain(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      inbox.push({ handler: 'plain', data, channel: ctx.getChannel(), pattern: undefined, metadata: ctx.getMetadata() });
    }

    @EventPattern<string>('noise')
    noise() {
      /* flood target for the slow-consumer fault */
    }
  }
  @Module({ controllers: [DurableController] })
  class DurableModule {}
  const logger = new CaptureLogger();
  const server = new RedisPubSubServer(options);
  const events: DeliveryEvents = { recovered: [], unrecoverable: [], gaps: [], resubscribed: 0, cutOvers: 0 };
  server.on('recovered', (info) => events.recovered.push(info));
  server.on('unrecoverable', (info) => events.unrecoverable.push(info));
  server.on('gap', (info) => events.gaps.push(info));
  server.on('resubscribed', () => events.resubscribed++);
  server.on('cut-over', (info) => info.connection === 'subscriber' && events.cutOvers++);
  const app = await NestFactory.createMicroservice(DurableModule, { strategy: server, logger });
  await app.listen();
  return {
    app,
    server,
    inbox,
    logger,
    events,
    handled: () => inbox.of('durable').map((item) => (item.data as { n: number }).n),
    close: () => app.close(),
  };
}
