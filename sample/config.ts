import type { LoggerService, LogLevel } from '@nestjs/common';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { HeartbeatOptions, RetryOptions } from '../lib/index.js';
import type { RedisPubSubHealthOptions } from '../lib/health/index.js';

/** Everything the sample app needs; `main.ts` builds it from the environment, tests build their own. */
export interface SampleConfig {
  /** Redis for both the server and the client, e.g. `redis://127.0.0.1:6379`. */
  redisUrl: string;
  /** HTTP port; 0 picks a free one. Default 3000. */
  port?: number;
  /** HTTP bind address. Default: every interface. */
  host?: string;
  /** Transport heartbeats (server and client). Default: the library's (2 000 / 2 000 ms). */
  heartbeat?: HeartbeatOptions;
  /** Transport reconnect backoff. Default: the library's. */
  retry?: RetryOptions;
  /** Health thresholds (grace period, liveness timeout, staleness). Default: the library's. */
  health?: RedisPubSubHealthOptions;
  /** Serves `GET /metrics` from this exporter (see metrics.ts). Default: no /metrics. */
  prometheus?: PrometheusExporter;
  /** Nest logger; `false` silences the app (tests). */
  logger?: LoggerService | LogLevel[] | false;
}

/** Injection token of the ClientsModule client the HTTP endpoint emits through. */
export const EVENTS = 'EVENTS';

export const SERVER_NAME = 'sample-server';
export const CLIENT_NAME = 'sample-client';
