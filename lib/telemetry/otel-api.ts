import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';

export type Otel = typeof OtelApi;

let loaded: Otel | null | undefined;

/**
 * `@opentelemetry/api` when the application has it installed, otherwise null. An optional peer:
 * loaded lazily and synchronously (a static import would make it a hard dependency of the main
 * entry). All versions of the API share one global registry, so whatever copy this resolves to sees
 * the provider the application registered.
 */
export function otelApi(): Otel | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('@opentelemetry/api') as Otel;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/** The registered tracer provider's tracer, or undefined when none is registered (the API's no-op). */
export function registeredTracer(api: Otel, name: string): OtelApi.Tracer | undefined {
  const provider = api.trace.getTracerProvider() as OtelApi.TracerProvider & { getDelegate?: () => OtelApi.TracerProvider };
  // Unregistered, the global is a proxy delegating to the API's no-op provider, a singleton that
  // any fresh proxy returns too.
  if (typeof provider.getDelegate === 'function' && provider.getDelegate() === new api.ProxyTracerProvider().getDelegate()) return undefined;
  return api.trace.getTracer(name);
}

/** The registered meter provider's meter, or undefined when none is registered (the API's no-op meter). */
export function registeredMeter(api: Otel, name: string): OtelApi.Meter | undefined {
  const meter = api.metrics.getMeter(name);
  return meter === api.createNoopMeter() ? undefined : meter;
}
