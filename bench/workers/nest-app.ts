/** The Nest side of the app worker: one controller, run by ServerRedis, the bare floor transport or RedisPubSubServer. */
import 'reflect-metadata';
import { Controller, Module, type INestMicroservice, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern, Payload, Transport, type MicroserviceOptions } from '@nestjs/microservices';
import type { RedisPubSubServer } from '../../lib/index.js';
import { emitToParent, nowNs } from '../support/ipc.js';
import { EVENT_CHANNEL, MARKER_CHANNEL, RPC_PATTERN } from '../support/payloads.js';
import type { AppConfig } from './app.js';
import { onEvent, onMarker } from './sink.js';

@Controller()
class BenchController {
  @EventPattern<string>(EVENT_CHANNEL)
  event(@Payload() data: unknown) {
    onEvent(data);
  }

  @EventPattern<string>(MARKER_CHANNEL)
  marker(@Payload() data: unknown) {
    onMarker(data);
  }

  @MessagePattern(RPC_PATTERN)
  rpc(@Payload() data: { n?: number }) {
    return { ok: true, n: data?.n };
  }
}

@Module({ controllers: [BenchController] })
class BenchModule {}

/** The same events through one batch handler. */
@Controller()
class BatchBenchController {
  @EventPattern<string>(EVENT_CHANNEL, { batch: true })
  events(@Payload() payloads: unknown[]) {
    for (let i = 0; i < payloads.length; i++) onEvent(payloads[i]);
  }

  @EventPattern<string>(MARKER_CHANNEL)
  marker(@Payload() data: unknown) {
    onMarker(data);
  }
}

@Module({ controllers: [BatchBenchController] })
class BatchBenchModule {}

/** The control build of the telemetry section (support/without-telemetry.ts writes it to dist/without-telemetry/). */
const WITHOUT_TELEMETRY_ENTRY = new URL('../../without-telemetry/lib/index.js', import.meta.url).href;

const LOG_LEVELS: LogLevel[] = process.env.BENCH_VERBOSE ? ['log', 'error', 'warn'] : ['error', 'warn'];

function transportEvent(name: string) {
  return () => emitToParent('transport', { name, t: nowNs() });
}

export async function startNest(cfg: AppConfig): Promise<{ app: INestMicroservice; server?: RedisPubSubServer }> {
  let app: INestMicroservice;
  let server: RedisPubSubServer | undefined;
  if (cfg.kind === 'nest-redis') {
    app = await NestFactory.createMicroservice<MicroserviceOptions>(BenchModule, {
      transport: Transport.REDIS,
      options: { host: cfg.host, port: cfg.port, ...cfg.nestRedis },
      logger: LOG_LEVELS,
    });
    // ServerRedis.on() listens on both ioredis clients and passes 'sub' / 'pub' first.
    for (const name of ['close', 'reconnecting', 'ready', 'end']) app.on(name, (type: string) => transportEvent(`${type}:${name}`)());
  } else if (cfg.kind === 'nest-floor') {
    const { FloorServer } = await import('./floor-server.js');
    app = await NestFactory.createMicroservice(BenchModule, { strategy: new FloorServer(cfg.host, cfg.port), logger: LOG_LEVELS });
  } else {
    if (cfg.otel) (await import('./otel-noop.js')).registerNoopOtel();
    const lib = (cfg.build === 'without-telemetry' ? await import(WITHOUT_TELEMETRY_ENTRY) : await import('../../lib/index.js')) as typeof import('../../lib/index.js');
    server = new lib.RedisPubSubServer({ url: `redis://${cfg.host}:${cfg.port}`, ...cfg.pubsub });
    app = await NestFactory.createMicroservice(cfg.batchHandler ? BatchBenchModule : BenchModule, { strategy: server, logger: LOG_LEVELS });
    for (const name of ['heartbeat-timeout', 'probe-failed', 'suspect', 'resumed', 'cut-over', 'reconnected', 'resubscribed']) {
      app.on(name, transportEvent(name));
    }
    app.on('status', (state: string) => transportEvent(`status:${state}`)());
  }
  await app.listen();
  return { app, server };
}
