import { createSampleApp, type SampleApp } from '../sample/app.js';
import { registerPrometheusMetrics } from '../sample/metrics.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { HEARTBEAT, RETRY, http } from './health/http.js';

// Its own file: the sample registers OpenTelemetry's global meter provider.
describe('sample app: GET /metrics in Prometheus format', () => {
  let redis: RedisServerHandle;
  let sample: SampleApp;
  let metrics: ReturnType<typeof registerPrometheusMetrics>;

  beforeAll(async () => {
    redis = await startRedis();
    metrics = registerPrometheusMetrics();
    sample = await createSampleApp({
      redisUrl: redis.url,
      port: 0,
      host: '127.0.0.1',
      heartbeat: HEARTBEAT,
      retry: RETRY,
      prometheus: metrics.exporter,
      logger: new CaptureLogger(),
    });
    await sample.transportReady;
  });

  afterAll(async () => {
    await sample?.close();
    await metrics?.shutdown();
    await redis?.stop();
  });

  const scrape = async () => {
    const response = await fetch(`${sample.url}/metrics`, { signal: AbortSignal.timeout(2_000) });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    return response.text();
  };

  it('exposes the transport state, and the messaging metrics once an order went through', async () => {
    expect(await scrape()).toMatch(/^redis_pubsub_state\{[^}]*redis_pubsub_instance="sample-server"[^}]*redis_pubsub_state="connected"[^}]*\} 1/m);
    expect((await http(sample.url, '/orders', { method: 'POST', body: { item: 'book', quantity: 1 } })).status).toBe(202);
    const text = await waitFor(async () => {
      const body = await scrape();
      return /^messaging_process_duration_count\{[^}]*messaging_destination_name="orders\.created"/m.test(body) ? body : undefined;
    }, { message: 'orders.created processed' });
    expect(text).toMatch(/^messaging_client_sent_messages_total\{[^}]*messaging_destination_name="orders\.created"[^}]*\} 1/m);
    expect(text).toMatch(/^messaging_client_consumed_messages_total\{[^}]*messaging_destination_template="orders\.\*"[^}]*\} 1/m);
    expect(text).toMatch(/^redis_pubsub_subscriptions_confirmed\{[^}]*redis_pubsub_instance="sample-server"[^}]*\} 3/m);
  });
});
