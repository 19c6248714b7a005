import type { Context, Link, Span, TextMapGetter, Tracer } from '@opentelemetry/api';
import { errorText } from '../error-text.js';
import type { Otel } from './otel-api.js';
import { ATTR, destinationLabel, errorType, spanAttributes, type Destination } from './semconv.js';

/** Envelope metadata is untrusted input: only string values are read as trace context. */
const metadataGetter: TextMapGetter<Record<string, unknown>> = {
  get: (carrier, key) => {
    const value = carrier[key];
    return typeof value === 'string' ? value : undefined;
  },
  keys: (carrier) => Object.keys(carrier),
};

/**
 * Messaging spans per the OpenTelemetry semantic conventions: a PRODUCER `send {destination}` span
 * whose context travels in the envelope's `metadata` (W3C `traceparent`/`tracestate` with the default
 * propagator), and a CONSUMER `process {destination}` span per handled message, child of and linked
 * to that context, so one message is one trace across services.
 */
export class MessagingTracing {
  constructor(
    private readonly api: Otel,
    private readonly tracer: Tracer,
  ) {}

  /**
   * Starts a send span and returns the metadata to put in the envelope. Metadata that already
   * carries a `traceparent` is the sender's own creation context: kept as is, and linked.
   */
  startSend(
    destination: Destination,
    metadata: Record<string, string> | undefined,
    parent: Context | undefined,
    messageId: string | undefined,
  ): { span: Span; context: Context; metadata: Record<string, string> | undefined } {
    const api = this.api;
    const base = parent ?? api.context.active();
    const own = metadata !== undefined && typeof metadata.traceparent === 'string';
    const links: Link[] = [];
    if (own) {
      const creation = api.trace.getSpanContext(api.propagation.extract(api.ROOT_CONTEXT, metadata, metadataGetter));
      if (creation && api.isSpanContextValid(creation)) links.push({ context: creation });
    }
    const span = this.tracer.startSpan(
      `send ${destinationLabel(destination)}`,
      { kind: api.SpanKind.PRODUCER, attributes: spanAttributes(destination, 'send'), links },
      base,
    );
    if (messageId !== undefined) span.setAttributes({ [ATTR.messageId]: messageId, [ATTR.conversationId]: messageId });
    const context = api.trace.setSpan(base, span);
    if (own) return { span, context, metadata };
    const carrier: Record<string, string> = { ...metadata };
    api.propagation.inject(context, carrier);
    return { span, context, metadata: carrier };
  }

  /**
   * Starts a process span, child of the producer's context found in `metadata` (or of `fallback`,
   * e.g. the request's own span when a reply carries no context), and linked to it.
   */
  startProcess(
    destination: Destination,
    metadata: Record<string, unknown> | undefined,
    bodySize: number,
    messageId: string | undefined,
    fallback: Context | undefined,
  ): { span: Span; context: Context } {
    const api = this.api;
    let parent = fallback ?? api.ROOT_CONTEXT;
    if (metadata !== undefined) {
      const extracted = api.propagation.extract(api.ROOT_CONTEXT, metadata, metadataGetter);
      if (api.trace.getSpanContext(extracted)) parent = extracted;
    }
    const producer = api.trace.getSpanContext(parent);
    const attributes = spanAttributes(destination, 'process');
    attributes[ATTR.bodySize] = bodySize;
    if (messageId !== undefined) {
      attributes[ATTR.messageId] = messageId;
      attributes[ATTR.conversationId] = messageId;
    }
    const span = this.tracer.startSpan(
      `process ${destinationLabel(destination)}`,
      { kind: api.SpanKind.CONSUMER, attributes, links: producer && api.isSpanContextValid(producer) ? [{ context: producer }] : [] },
      parent,
    );
    return { span, context: api.trace.setSpan(parent, span) };
  }

  end(span: Span, error?: unknown, failed = error !== undefined): void {
    if (failed) {
      if (error instanceof Error) span.recordException(error);
      span.setAttribute(ATTR.errorType, errorType(error));
      span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: errorText(error) });
    }
    span.end();
  }

  /**
   * A lifecycle span (reconnect, resubscribe, heartbeat timeout, probe failure) on its own trace,
   * covering `durationMs` up to now.
   */
  lifecycle(name: string, durationMs: number, attributes: Record<string, string | number | boolean | string[]>, error?: string): void {
    const now = Date.now();
    const span = this.tracer.startSpan(
      `redis-pubsub ${name}`,
      { kind: this.api.SpanKind.INTERNAL, startTime: now - durationMs, attributes, root: true },
      this.api.ROOT_CONTEXT,
    );
    if (error !== undefined) span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: error });
    span.end(now);
  }
}
