import { context, metrics, propagation, trace, type Attributes } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';

/**
 * OpenTelemetry SDK as an application registers it (tracer provider, meter provider, W3C propagator,
 * async context manager), exporting into memory so tests read what an operator would see.
 */
export class InMemoryTelemetry {
  readonly spans = new InMemorySpanExporter();
  private readonly metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // Exports only when a test asks (forceFlush): collection is never timing-dependent.
  private readonly reader = new PeriodicExportingMetricReader({ exporter: this.metricExporter, exportIntervalMillis: 3_600_000 });
  private readonly tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(this.spans)] });
  private readonly meterProvider = new MeterProvider({ readers: [this.reader] });
  private readonly contextManager = new AsyncLocalStorageContextManager();

  register(): this {
    context.setGlobalContextManager(this.contextManager.enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(this.tracerProvider);
    metrics.setGlobalMeterProvider(this.meterProvider);
    return this;
  }

  async shutdown(): Promise<void> {
    await this.meterProvider.shutdown();
    await this.tracerProvider.shutdown();
    this.contextManager.disable();
    trace.disable();
    metrics.disable();
    propagation.disable();
    context.disable();
  }

  finished(): ReadableSpan[] {
    return this.spans.getFinishedSpans();
  }

  named(name: string): ReadableSpan[] {
    return this.finished().filter((span) => span.name === name);
  }

  /** One collection of every instrument, as a cumulative snapshot. */
  async collect(): Promise<Collected> {
    this.metricExporter.reset();
    await this.reader.forceFlush();
    const batches = this.metricExporter.getMetrics();
    const all = batches.flatMap((batch) => batch.scopeMetrics.flatMap((scope) => scope.metrics));
    return new Collected(all);
  }
}

/** Reads one collection: sums and histogram counts of the points whose attributes match. */
export class Collected {
  constructor(readonly metrics: MetricData[]) {}

  names(): string[] {
    return [...new Set(this.metrics.map((m) => m.descriptor.name))].sort();
  }

  metric(name: string): MetricData | undefined {
    return this.metrics.find((m) => m.descriptor.name === name);
  }

  /** Sum of the values (gauges, sums) or of the counts (histograms) of the matching points. */
  value(name: string, match: Attributes = {}): number {
    const metric = this.metric(name);
    if (!metric) return 0;
    let total = 0;
    for (const point of metric.dataPoints as Array<{ attributes: Attributes; value: unknown }>) {
      if (!Object.entries(match).every(([key, value]) => point.attributes[key] === value)) continue;
      total += metric.dataPointType === DataPointType.HISTOGRAM ? (point.value as { count: number }).count : (point.value as number);
    }
    return total;
  }

  /** Whether some point matching `match` exists at all (a gauge of 0 still exists). */
  has(name: string, match: Attributes = {}): boolean {
    const metric = this.metric(name);
    return !!metric?.dataPoints.some((point) => Object.entries(match).every(([key, value]) => point.attributes[key] === value));
  }
}
