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

export const EVENT_CONTENDERS = [RAW, NEST_REDIS, PUBSUB, PUBSUB_HB500];
export const RECOVERY_CONTENDERS = [NEST_REDIS, PUBSUB, PUBSUB_HB500];

/** References, not contenders: the floor of any Nest transport (see workers/floor-server.ts). */
export const NEST_FLOOR_HOOKS: Contender = {
  id: 'nest-floor',
  label: 'reference: minimal Nest transport (JSON.parse, processing hooks, await handler)',
  app: { kind: 'nest-floor', floorHooks: true },
};
export const NEST_FLOOR_BARE: Contender = {
  id: 'nest-floor-bare',
  label: 'reference: minimal Nest transport (JSON.parse, bare handler call)',
  app: { kind: 'nest-floor', floorHooks: false },
};
