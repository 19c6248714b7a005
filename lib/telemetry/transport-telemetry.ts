import { performance } from 'node:perf_hooks';
import type { Context } from '@opentelemetry/api';
import { REPLY_CHANNEL_PREFIX } from '../constants.js';
import type { TransportLink } from '../transport-link.js';
import { MessagingMetrics, type MetricSources } from './metrics.js';
import { otelApi, registeredMeter, registeredTracer, type Otel } from './otel-api.js';
import { ATTR, INSTRUMENTATION_SCOPE, type Destination } from './semconv.js';
import { MessagingTracing } from './tracing.js';

const REPLY_TEMPLATE = `${REPLY_CHANNEL_PREFIX}{client}`;

/** A client's own reply channel is temporary (one per instance, random name); Nest's `<channel>.reply` is not. */
export function replyDestination(channel: string): Destination {
  return channel.startsWith(REPLY_CHANNEL_PREFIX) ? { name: channel, template: REPLY_TEMPLATE, temporary: true } : { name: channel };
}

/** One PUBLISH being traced and measured. */
export interface SendOperation {
  /** The envelope metadata to send: the caller's, plus the trace context. */
  readonly metadata: Record<string, string> | undefined;
  /** The send span's context (undefined without tracing). */
  readonly context: Context | undefined;
  /** `bodySize`: bytes of the serialized envelope, when it got that far. */
  end(bodySize: number | undefined, error?: unknown): void;
}

/** One message being handled. */
export interface ProcessOperation {
  /** The process span's context: replies are sent in it. */
  readonly context: Context | undefined;
  /** Runs `fn` with the process span active, so spans the handler starts are its children. */
  run<T>(fn: () => T): T;
  /** `failed` distinguishes a handler error of `undefined` from success. */
  end(error?: unknown, failed?: boolean): void;
}

/**
 * The OpenTelemetry side of one server or client: tracing and metrics when `@opentelemetry/api` is
 * installed and the application registered a tracer or meter provider before the transport started.
 * `start()` returns undefined otherwise, and the transport's hot path then checks one field and
 * does nothing else.
 */
export class TransportTelemetry {
  private constructor(
    private readonly api: Otel,
    private readonly tracing: MessagingTracing | undefined,
    private readonly metrics: MessagingMetrics | undefined,
  ) {}

  static start(link: TransportLink, sources: MetricSources): TransportTelemetry | undefined {
    const api = otelApi();
    if (!api) return undefined;
    const tracer = registeredTracer(api, INSTRUMENTATION_SCOPE);
    const meter = registeredMeter(api, INSTRUMENTATION_SCOPE);
    if (!tracer && !meter) return undefined;
    const telemetry = new TransportTelemetry(api, tracer && new MessagingTracing(api, tracer), meter && new MessagingMetrics(meter, sources));
    telemetry.watch(link, sources.name);
    return telemetry;
  }

  beginSend(destination: Destination, metadata: Record<string, string> | undefined, messageId?: string, parent?: Context): SendOperation {
    const startedAt = performance.now();
    const traced = this.tracing?.startSend(destination, metadata, parent, messageId);
    let ended = false;
    return {
      metadata: traced ? traced.metadata : metadata,
      context: traced?.context,
      end: (bodySize, error) => {
        if (ended) return;
        ended = true;
        if (traced) {
          if (bodySize !== undefined) traced.span.setAttribute(ATTR.bodySize, bodySize);
          this.tracing!.end(traced.span, error);
        }
        this.metrics?.sent(destination, performance.now() - startedAt, error);
      },
    };
  }

  beginProcess(destination: Destination, metadata: Record<string, unknown> | undefined, bodySize: number, messageId?: string, fallback?: Context): ProcessOperation {
    const startedAt = performance.now();
    const traced = this.tracing?.startProcess(destination, metadata, bodySize, messageId, fallback);
    const api = this.api;
    let ended = false;
    return {
      context: traced?.context,
      run: (fn) => (traced ? api.context.with(traced.context, fn) : fn()),
      end: (error, failed = error !== undefined) => {
        if (ended) return;
        ended = true;
        if (traced) this.tracing!.end(traced.span, error, failed);
        this.metrics?.processed(destination, performance.now() - startedAt, error, failed);
      },
    };
  }

  /** Lifecycle spans and metrics from the link's own events. */
  private watch(link: TransportLink, name: string): void {
    const tracing = this.tracing;
    const metrics = this.metrics;
    link.on('reconnected', ({ connection, downtimeMs }) => {
      tracing?.lifecycle('reconnect', downtimeMs, { [ATTR.instance]: name, [ATTR.connection]: connection, 'redis_pubsub.downtime_ms': downtimeMs });
    });
    link.on('resubscribed', ({ channels, patterns, durationMs, failed }) => {
      tracing?.lifecycle(
        'resubscribe',
        durationMs,
        { [ATTR.instance]: name, 'redis_pubsub.channels': channels, 'redis_pubsub.patterns': patterns, 'redis_pubsub.failed': failed },
        failed.length > 0 ? `Redis refused ${failed.length} subscription(s)` : undefined,
      );
      metrics?.resubscribed(durationMs, failed.length);
    });
    link.on('heartbeat-timeout', ({ connection, silentForMs }) => {
      tracing?.lifecycle('heartbeat timeout', 0, { [ATTR.instance]: name, [ATTR.connection]: connection, 'redis_pubsub.silent_for_ms': silentForMs }, 'heartbeat timeout');
      metrics?.heartbeatTimeout(connection);
    });
    link.on('probe-failed', ({ reason }) => {
      tracing?.lifecycle('probe failed', 0, { [ATTR.instance]: name, [ATTR.reason]: reason }, reason);
      metrics?.probeFailed();
    });
    // Make-before-break: not errors in themselves (the heartbeat timeout or probe failure behind a suspicion is one).
    link.on('suspect', ({ connection, reason }) => {
      tracing?.lifecycle('suspect', 0, { [ATTR.instance]: name, [ATTR.connection]: connection, [ATTR.reason]: reason });
      metrics?.suspected(connection);
    });
    for (const outcome of ['resumed', 'cut-over'] as const) {
      link.on(outcome, ({ connection, suspectForMs }) => {
        tracing?.lifecycle(outcome, suspectForMs, { [ATTR.instance]: name, [ATTR.connection]: connection, 'redis_pubsub.suspect_for_ms': suspectForMs });
        metrics?.handedOver(connection, outcome, suspectForMs);
      });
    }
  }
}
