import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createSampleApp, type SampleApp } from './app.js';
import { startLocalRedis, type LocalRedis } from './local-redis.js';
import { registerPrometheusMetrics } from './metrics.js';

/**
 * `npm run sample`: the hybrid sample app on PORT (default 3000), using REDIS_URL, or a
 * redis-server of its own (from PATH, on a free local port) when REDIS_URL is not set.
 */
const logger = new Logger('Sample');
let localRedis: LocalRedis | undefined;
let sample: SampleApp | undefined;
let stopping = false;

async function main(): Promise<void> {
  const port = parsePort(process.env.PORT);
  let redisUrl = process.env.REDIS_URL;
  if (!redisUrl) {
    localRedis = await startLocalRedis();
    redisUrl = localRedis.url;
    logger.log(`REDIS_URL not set: started a local redis-server at ${redisUrl}`);
  }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(signal));
  // Before the app: the transports look for a registered meter provider when they start.
  const { exporter } = registerPrometheusMetrics();
  sample = await createSampleApp({ redisUrl, port, host: process.env.HOST, prometheus: exporter });
  const url = sample.url.replace(/\[::1?\]/, "localhost");
  logger.log(`listening on ${url}`);
  logger.log('try: curl -X POST -H "content-type: application/json" -d \'{"item":"book","quantity":2}\' ' + `${url}/orders`);
  logger.log(`     curl ${url}/orders   curl ${url}/health   (/health/live, /health/ready)   curl ${url}/metrics`);
  sample.transportReady.then(() => logger.log('transport connected and subscribed'), () => undefined);
}

/** Closes the app (connections first), then the local Redis. A repeated signal does not interrupt it. */
async function shutdown(reason: string, code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.log(`${reason}: shutting down`);
  setTimeout(() => {
    logger.error('shutdown took more than 15 s: exiting anyway');
    process.exit(1);
  }, 15_000).unref();
  try {
    await sample?.close();
  } catch (error) {
    logger.error(`closing the app failed: ${String(error)}`);
    code = 1;
  }
  await localRedis?.stop();
  process.exit(code);
}

function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return 3000;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`PORT must be an integer 0-65535, got "${value}"`);
  return port;
}

main().catch((error: unknown) => {
  logger.error(`could not start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  void shutdown('start-up failure', 1);
});
