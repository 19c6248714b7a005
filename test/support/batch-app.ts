import 'reflect-metadata';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { RedisPubSubBatchContext, RedisPubSubContext, RedisPubSubServer, type RedisPubSubOptions } from '../../lib/index.js';
import { waitFor } from '../harness/wait.js';
import { CaptureLogger } from './capture-logger.js';

export interface ReceivedBatch {
  handler: string;
  payloads: unknown[];
  messages: Array<{ channel: string; pattern: string | undefined; metadata: Record<string, unknown> | undefined }>;
}

/** What the batch handlers saw, and a gate that holds every batch handler while it is closed. */
export class BatchState {
  readonly batches: ReceivedBatch[] = [];
  readonly single: Array<{ data: unknown; channel: string }> = [];
  /** Batch handlers running right now, and the most that ever ran at once, per handler. */
  readonly active = new Map<string, number>();
  readonly maxActive = new Map<string, number>();
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  of(handler: string): ReceivedBatch[] {
    return this.batches.filter((b) => b.handler === handler);
  }

  payloadsOf(handler: string): unknown[] {
    return this.of(handler).flatMap((b) => b.payloads);
  }

  close(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  open(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  async waitFor(predicate: () => boolean, message: string): Promise<void> {
    await waitFor(predicate, { message: `${message}; batches: ${JSON.stringify(this.batches.map((b) => [b.handler, b.payloads])).slice(0, 600)}` });
  }

  async record(handler: string, payloads: unknown[], ctx: RedisPubSubBatchContext): Promise<void> {
    const running = (this.active.get(handler) ?? 0) + 1;
    this.active.set(handler, running);
    this.maxActive.set(handler, Math.max(running, this.maxActive.get(handler) ?? 0));
    try {
      this.batches.push({
        handler,
        payloads,
        messages: ctx.getMessages().map((m) => ({ channel: m.getChannel(), pattern: m.getPattern(), metadata: m.getMetadata() })),
      });
      if (this.gate) await this.gate;
    } finally {
      this.active.set(handler, (this.active.get(handler) ?? 1) - 1);
    }
  }
}

function createBatchController(state: BatchState) {
  @Controller()
  class MetricsController {
    @EventPattern<string>('metrics.*', { psubscribe: true, batch: true, maxBatchSize: 10 })
    metrics(@Payload() payloads: unknown[], @Ctx() ctx: RedisPubSubBatchContext) {
      return state.record('metrics', payloads, ctx);
    }

    // Coexists with the batch pattern handler above: messages on metrics.cpu reach both.
    @EventPattern<string>('metrics.cpu')
    cpu(@Payload() data: unknown, @Ctx() ctx: RedisPubSubContext) {
      state.single.push({ data, channel: ctx.getChannel() });
    }

    @EventPattern<string>('batch.fail', { batch: true })
    fail(@Payload() payloads: Array<{ fail?: boolean }>, @Ctx() ctx: RedisPubSubBatchContext) {
      void state.record('fail', payloads, ctx);
      if (payloads.some((p) => p.fail)) throw new Error('batch handler exploded');
    }

    @EventPattern<string>('batch.slow', { batch: true, maxBatchSize: 2, maxPending: 4 })
    slow(@Payload() payloads: unknown[], @Ctx() ctx: RedisPubSubBatchContext) {
      return state.record('slow', payloads, ctx);
    }

    @EventPattern<string>('batch.wait', { batch: true, maxBatchSize: 3, maxWaitMs: 60_000 })
    wait(@Payload() payloads: unknown[], @Ctx() ctx: RedisPubSubBatchContext) {
      return state.record('wait', payloads, ctx);
    }
  }
  return MetricsController;
}

export interface StartedBatchApp {
  app: INestMicroservice;
  server: RedisPubSubServer;
  state: BatchState;
  logger: CaptureLogger;
  close(): Promise<void>;
}

export async function startBatchApp(options: RedisPubSubOptions): Promise<StartedBatchApp> {
  const state = new BatchState();
  @Module({ controllers: [createBatchController(state)] })
  class BatchModule {}
  const logger = new CaptureLogger();
  const server = new RedisPubSubServer(options);
  const app = await NestFactory.createMicroservice(BatchModule, { strategy: server, logger });
  await app.listen();
  return { app, server, state, logger, close: () => app.close() };
}
