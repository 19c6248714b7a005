import 'reflect-metadata';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { RedisPubSubContext, RedisPubSubServer, type RedisPubSubOptions } from '../../lib/index.js';
import { CaptureLogger } from './capture-logger.js';
import { Inbox } from './inbox.js';

/** A gate a handler can wait on, so tests control when an in-flight handler finishes. */
export class Gate {
  private open?: () => void;
  readonly opened = new Promise<void>((resolve) => (this.open = resolve));
  entered = false;
  release(): void {
    this.open?.();
  }
}

export interface TestAppState {
  inbox: Inbox;
  gate?: Gate;
}

export function createController(state: TestAppState) {
  const record = (handler: string, data: unknown, ctx: RedisPubSubContext) =>
    state.inbox.push({ handler, data, channel: ctx.getChannel(), pattern: ctx.getPattern(), metadata: ctx.getMetadata() });

  @Controller()
  class OrdersController {
    @EventPattern<string>('orders.created')
    created(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      record('created', data, ctx);
    }

    @EventPattern<string>('orders.created')
    createdAudit(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      record('created-audit', data, ctx);
    }

    @EventPattern<string>('inbound')
    inbound(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      record('inbound', data, ctx);
    }

    @EventPattern<string>('orders.*', { psubscribe: true })
    anyOrder(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      record('any-order', data, ctx);
    }

    @EventPattern<string>('orders.fail')
    fail(@Payload() data: unknown) {
      if ((data as { sync?: boolean })?.sync) throw new Error('handler exploded synchronously');
      return Promise.reject(new Error('handler rejected'));
    }

    @EventPattern<string>('orders.slow')
    async slow(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      const gate = state.gate!;
      gate.entered = true;
      await gate.opened;
      record('slow', data, ctx);
    }

    @MessagePattern('math.sum')
    sum(@Payload() numbers: number[]) {
      return numbers.reduce((a, b) => a + b, 0);
    }

    @MessagePattern('math.fail')
    mathFail() {
      throw new RpcException('cannot compute');
    }

    @MessagePattern('math.never')
    never() {
      return new Promise(() => undefined);
    }
  }
  return OrdersController;
}

export interface StartedTestApp {
  app: INestMicroservice;
  server: RedisPubSubServer;
  inbox: Inbox;
  logger: CaptureLogger;
  state: TestAppState;
  close(): Promise<void>;
}

export async function startTestApp(options: RedisPubSubOptions): Promise<StartedTestApp> {
  const state: TestAppState = { inbox: new Inbox() };
  @Module({ controllers: [createController(state)] })
  class TestModule {}
  const logger = new CaptureLogger();
  const server = new RedisPubSubServer(options);
  const app = await NestFactory.createMicroservice(TestModule, { strategy: server, logger });
  await app.listen();
  return {
    app,
    server,
    inbox: state.inbox,
    logger,
    state,
    close: () => app.close(),
  };
}
