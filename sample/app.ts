import { Logger, type INestApplication } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { RedisPubSubServer } from '../lib/index.js';
import { AppModule } from './app.module.js';
import { SERVER_NAME, type SampleConfig } from './config.js';

export interface SampleApp {
  app: INestApplication;
  server: RedisPubSubServer;
  /** http://host:port the app listens on. */
  url: string;
  /** Settles when the transport server is connected and subscribed (rejects if it gives up or is closed first). */
  transportReady: Promise<void>;
  close(): Promise<void>;
}

/**
 * The hybrid app: HTTP (Express) plus the Redis pub/sub transport, through connectMicroservice.
 * HTTP listens at once, without waiting for Redis, so the health endpoints answer even while
 * Redis is unreachable (readiness 503 until the transport is connected).
 */
export async function createSampleApp(config: SampleConfig): Promise<SampleApp> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register(config), {
    logger: config.logger,
    abortOnError: false,
  });
  const settings = app.get<ConfigService<SampleConfig, true>>(ConfigService);
  const server = new RedisPubSubServer({
    url: settings.get('redisUrl', { infer: true }),
    name: SERVER_NAME,
    heartbeat: settings.get('heartbeat', { infer: true }),
    retry: settings.get('retry', { infer: true }),
  });
  app.connectMicroservice({ strategy: server });
  try {
    // In a hybrid app this calls server.listen() synchronously: the server is registered (and
    // watched by the health indicator) from here on, even before Redis answers.
    const transportReady = app.startAllMicroservices().then(() => undefined);
    transportReady.catch((error: unknown) => new Logger('Sample').error(`transport server failed to start: ${String(error)}`));
    if (config.host) await app.listen(config.port ?? 3000, config.host);
    else await app.listen(config.port ?? 3000);
    const url = await app.getUrl();
    return { app, server, url, transportReady, close: () => app.close() };
  } catch (error) {
    await app.close();
    throw error;
  }
}
