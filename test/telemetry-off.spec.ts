import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { lastValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../lib/index.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

// Its own file: OpenTelemetry's registry is global, and here no tracer provider is ever registered.
describe('OpenTelemetry installed, no tracer provider registered', () => {
  let redis: RedisServerHandle;
  let app: StartedTestApp | undefined;
  let client: RedisPubSubClient | undefined;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterEach(async () => {
    await client?.close();
    await app?.close();
    metrics.disable();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it('changes nothing on the wire: events carry no trace context', async () => {
    app = await startTestApp({ url: redis.url, name: 'off-server' });
    client = new RedisPubSubClient({ url: redis.url, name: 'off-client' });
    await lastValueFrom(client.emit('inbound', { n: 1 }), { defaultValue: undefined });
    await app.inbox.waitFor((items) => items.length === 1);
    const [item] = app.inbox.of('inbound');
    expect(item!.data).toEqual({ n: 1 });
    // The delivery position (its own key) is all the metadata there is.
    expect(Object.keys(item!.metadata ?? {})).toEqual(['redisPubSub.position']);
  });

  it('with only a meter provider: metrics are recorded, still no trace context on the wire', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    metrics.setGlobalMeterProvider(provider);
    try {
      app = await startTestApp({ url: redis.url, name: 'metrics-only-server' });
      client = new RedisPubSubClient({ url: redis.url, name: 'metrics-only-client' });
      await lastValueFrom(client.emit('inbound', { n: 2 }), { defaultValue: undefined });
      await app.inbox.waitFor((items) => items.length === 1);
      expect(Object.keys(app.inbox.of('inbound')[0]!.metadata ?? {})).toEqual(['redisPubSub.position']);
      await reader.forceFlush();
      const names = exporter.getMetrics().flatMap((batch) => batch.scopeMetrics.flatMap((scope) => scope.metrics.map((m) => m.descriptor.name)));
      expect(names).toEqual(expect.arrayContaining(['messaging.client.sent.messages', 'messaging.client.consumed.messages', 'redis_pubsub.state']));
    } finally {
      await provider.shutdown();
    }
  });
});
