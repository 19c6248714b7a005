import type { Attributes } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { RedisPubSubStats } from '../lib/pubsub-link.js';
import { MessagingMetrics, type MetricSources } from '../lib/telemetry/metrics.js';
import { Collected } from './support/otel.js';

/**
 * The message counters are counted by the transport per attribute set and observed at collection
 * (pure logic against the real metrics SDK, with a meter of its own: nothing global is registered).
 */
describe('messages sent and consumed: counted per attribute set, observed at collection', () => {
  let provider: MeterProvider;
  let exporter: InMemoryMetricExporter;
  let reader: PeriodicExportingMetricReader;

  beforeEach(() => {
    exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    provider = new MeterProvider({ readers: [reader] });
  });

  afterEach(() => provider.shutdown());

  async function collect(): Promise<Collected> {
    exporter.reset();
    await reader.forceFlush();
    return new Collected(exporter.getMetrics().flatMap((batch) => batch.scopeMetrics.flatMap((scope) => scope.metrics)));
  }

  const sources = (name: string, state: RedisPubSubStats['state'] = 'connected'): MetricSources => ({
    name,
    kind: 'client',
    stats: () =>
      ({
        state,
        connections: { subscriber: { state, reconnects: 0, heartbeatRttMs: null }, publisher: { state, reconnects: 0, heartbeatRttMs: null } },
        subscriptions: { expected: 0, confirmed: 0, missing: [] },
        messages: { received: 0, invalid: 0, handlerErrors: 0, lost: 0, duplicates: 0, dropped: 0 },
      }) as unknown as RedisPubSubStats,
  });

  const sent = (channel: string, extra: Attributes = {}) => ({ 'messaging.destination.name': channel, 'messaging.operation.name': 'send', ...extra });

  it('counts each message once under its attributes, failures apart with error.type, and records one duration each', async () => {
    const metrics = new MessagingMetrics(provider.getMeter('test'), sources('counts'));
    metrics.sent({ name: 'a' }, 1);
    metrics.sent({ name: 'a' }, 2);
    metrics.sent({ name: 'a' }, 3, new TypeError('no'));
    metrics.processed({ name: 'a.1', template: 'a.*' }, 1);
    metrics.processed({ name: 'a.2', template: 'a.*' }, 1, 'failed', true);
    const m = await collect();
    expect(m.value('messaging.client.sent.messages', sent('a'))).toBe(3);
    expect(m.value('messaging.client.sent.messages', sent('a', { 'error.type': 'TypeError' }))).toBe(1);
    expect(m.value('messaging.client.operation.duration', sent('a'))).toBe(3);
    const processed = { 'messaging.destination.template': 'a.*', 'messaging.operation.name': 'process' };
    expect(m.value('messaging.client.consumed.messages', processed)).toBe(2);
    expect(m.value('messaging.client.consumed.messages', { ...processed, 'error.type': '_OTHER' })).toBe(1);
    expect(m.has('messaging.client.consumed.messages', { 'messaging.destination.name': 'a.1' })).toBe(false);
    expect(m.value('messaging.process.duration', processed)).toBe(2);
  });

  it('keeps at most 1,000 attribute sets per transport and operation: further destinations count under otel.metric.overflow', async () => {
    const metrics = new MessagingMetrics(provider.getMeter('test'), sources('bounded'));
    for (let i = 0; i < 1_000; i++) metrics.sent({ name: `c${i}` }, 1);
    metrics.sent({ name: 'one-too-many' }, 1);
    metrics.sent({ name: 'another' }, 1);
    metrics.sent({ name: 'c7' }, 1);
    const m = await collect();
    const instance = { 'redis_pubsub.instance': 'bounded' };
    expect(m.value('messaging.client.sent.messages', { ...instance, 'otel.metric.overflow': true })).toBe(2);
    expect(m.value('messaging.client.operation.duration', { ...instance, 'otel.metric.overflow': true })).toBe(2);
    expect(m.has('messaging.client.sent.messages', sent('one-too-many'))).toBe(false);
    expect(m.value('messaging.client.sent.messages', sent('c7'))).toBe(2);
    expect(m.value('messaging.client.sent.messages', instance)).toBe(1_003);
  });

  it('a transport that replaces a closed one of the same name continues its counts (cumulative counters never go back)', async () => {
    const meter = provider.getMeter('test');
    new MessagingMetrics(meter, sources('same', 'closed')).sent({ name: 'a' }, 1);
    const before = await collect();
    expect(before.value('messaging.client.sent.messages', sent('a'))).toBe(1);
    new MessagingMetrics(meter, sources('same')).sent({ name: 'a' }, 1);
    expect((await collect()).value('messaging.client.sent.messages', sent('a'))).toBe(2);
  });
});
