/**
 * A contender's receiving side, in its own process:
 *  - raw:        a plain ioredis subscriber doing JSON.parse (the ceiling; Nest is never loaded),
 *  - nest-redis: Nest's built-in Transport.REDIS (ServerRedis) in a real Nest microservice,
 *  - pubsub:     this transport (RedisPubSubServer) in a real Nest microservice, with the options given
 *                (and a batch handler with `batchHandler`),
 *  - nest-floor: a bare Nest transport doing nothing but JSON.parse + calling the Nest handler.
 * Handlers count events, record publish-to-handler latency, report markers (recovery), and
 * answer `bench.rpc` requests. The parent drives it over IPC (see ipc.ts).
 */
import type { RedisPubSubOptions, RedisPubSubServer } from '../../lib/index.js';
import { config, emitToParent, serve } from '../support/ipc.js';
import { EVENT_CHANNEL, MARKER_CHANNEL } from '../support/payloads.js';
import { onEvent, onMarker, setReportMarkers, sinkHandlers } from './sink.js';

export type ContenderKind = 'raw' | 'nest-redis' | 'pubsub' | 'nest-floor';

export interface AppConfig {
  kind: ContenderKind;
  host: string;
  port: number;
  /** pubsub only: options passed to RedisPubSubServer (url is added). */
  pubsub?: RedisPubSubOptions;
  /** nest-redis only: retryAttempts / retryDelay, as a user would configure them. */
  nestRedis?: { retryAttempts?: number; retryDelay?: number };
  /** pubsub only: register OpenTelemetry tracer and meter providers with no-op exporters first. */
  otel?: boolean;
  /** pubsub only: run the control build compiled without the OpenTelemetry code (telemetry section). */
  build?: 'without-telemetry';
  /** pubsub only: the event handler is a batch handler (`{ batch: true }`). */
  batchHandler?: boolean;
  /** Forward each marker to the parent (recovery section). */
  reportMarkers?: boolean;
}

const cfg = config<AppConfig>();
setReportMarkers(cfg.reportMarkers === true);
let pubsubServer: RedisPubSubServer | undefined;

async function start(): Promise<void> {
  if (cfg.kind === 'raw') {
    const { Redis } = await import('ioredis');
    const raw = new Redis({ host: cfg.host, port: cfg.port, lazyConnect: true });
    raw.on('error', () => undefined);
    raw.on('message', (channel: string, message: string) => {
      const value = JSON.parse(message);
      if (channel === EVENT_CHANNEL) onEvent(value.data);
      else onMarker(value.data);
    });
    await raw.connect();
    await raw.subscribe(EVENT_CHANNEL, MARKER_CHANNEL);
    return;
  }
  const { startNest } = await import('./nest-app.js');
  pubsubServer = (await startNest(cfg)).server;
}

serve({
  ...sinkHandlers,
  memory({ gc }: { gc?: boolean } = {}) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (gc && g) {
      g();
      g();
    }
    return { ...process.memoryUsage(), gcAvailable: g !== undefined };
  },
  cpu() {
    return process.cpuUsage();
  },
  stats() {
    return pubsubServer?.getStats();
  },
  exit() {
    setImmediate(() => process.exit(0));
    return true;
  },
});

start().then(
  () => emitToParent('ready', { pid: process.pid }),
  (error: unknown) => {
    emitToParent('fatal', error instanceof Error ? (error.stack ?? error.message) : String(error));
    setTimeout(() => process.exit(1), 100);
  },
);
