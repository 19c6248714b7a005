import type { AppConfig } from '../workers/app.js';

export interface Contender {
  id: string;
  label: string;
  app: Omit<AppConfig, 'host' | 'port'>;
}

export const RAW: Contender = { id: 'raw', label: 'raw ioredis + JSON.parse (ceiling)', app: { kind: 'raw' } };
/** Configured as a user would, so that it reconnects at all: retryAttempts 1000, retryDelay 500. */
export const NEST_REDIS: Contender = {
  id: 'nest-redis',
  label: 'Nest Transport.REDIS (built-in)',
  app: { kind: 'nest-redis', nestRedis: { retryAttempts: 1000, retryDelay: 500 } },
};
export const PUBSUB: Contender = { id: 'pubsub', label: 'RedisPubSubServer (defaults)', app: { kind: 'pubsub', pubsub: {} } };
export const PUBSUB_HB500: Contender = {
  id: 'pubsub-hb500',
  label: 'RedisPubSubServer (heartbeat 500 ms)',
  app: { kind: 'pubsub', pubsub: { heartbeat: { intervalMs: 500 } } },
};

/** Tracing and metrics on, exporting nowhere: the cost of the instrumentation itself. */
export const PUBSUB_OTEL: Contender = {
  id: 'pubsub-otel',
  label: 'RedisPubSubServer (OpenTelemetry on, no-op exporters)',
  app: { kind: 'pubsub', pubsub: {}, otel: true },
};

/**
 * The control of the telemetry section: the same library compiled without its OpenTelemetry feature
 * (see support/without-telemetry.ts), to show what having the feature costs while it is off.
 */
export const PUBSUB_WITHOUT_TELEMETRY: Contender = {
  id: 'pubsub-without-otel',
  label: 'RedisPubSubServer built without the OpenTelemetry code (control)',
  app: { kind: 'pubsub', pubsub: {}, build: 'without-telemetry' },
};

/**
 * The ceiling of per-event delivery through Nest: a transport that does nothing but JSON.parse and
 * call the handler Nest registered (see workers/floor-server.ts). Every Nest transport pays at least this.
 */
export const NEST_BARE: Contender = {
  id: 'nest-bare',
  label: 'bare Nest transport (JSON.parse + Nest handler, nothing else)',
  app: { kind: 'nest-floor' },
};
/** The same handler as `@EventPattern(..., { batch: true })`: it receives arrays. */
export const PUBSUB_BATCH: Contender = {
  id: 'pubsub-batch',
  label: 'RedisPubSubServer, batch handler (defaults)',
  app: { kind: 'pubsub', pubsub: {}, batchHandler: true },
};

export const EVENT_CONTENDERS = [RAW, NEST_REDIS, PUBSUB, PUBSUB_HB500];
export const THROUGHPUT_CONTENDERS = [RAW, NEST_REDIS, NEST_BARE, PUBSUB, PUBSUB_HB500, PUBSUB_OTEL, PUBSUB_BATCH];
export const RECOVERY_CONTENDERS = [NEST_REDIS, PUBSUB, PUBSUB_HB500];
