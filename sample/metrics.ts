import type { IncomingMessage, ServerResponse } from 'node:http';
import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';

/** Injection token of the Prometheus exporter the /metrics endpoint serves. */
export const PROMETHEUS = 'PROMETHEUS';

/**
 * Registers OpenTelemetry's meter provider with a Prometheus exporter (served by the app's own
 * HTTP server, not a second port). Call it before the transports start: they look for a
 * registered provider when they start.
 */
export function registerPrometheusMetrics(): { exporter: PrometheusExporter; shutdown(): Promise<void> } {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(provider);
  return {
    exporter,
    async shutdown() {
      await provider.shutdown();
      metrics.disable();
    },
  };
}

/** `GET /metrics`: every transport metric in Prometheus' text format. */
@Controller('metrics')
export class MetricsController {
  constructor(@Inject(PROMETHEUS) private readonly exporter: PrometheusExporter) {}

  @Get()
  scrape(@Req() request: IncomingMessage, @Res() response: ServerResponse): void {
    this.exporter.getMetricsRequestHandler(request, response);
  }
}
