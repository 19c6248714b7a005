import { createSampleApp, type SampleApp } from '../../sample/app.js';
import type { RedisPubSubHealthOptions } from '../../lib/health/index.js';
import { CaptureLogger } from '../support/capture-logger.js';

/** Small transport settings so outages are detected and recovered from in well under a second. */
export const HEARTBEAT = { intervalMs: 200, timeoutMs: 300 } as const;
export const RETRY = { minDelayMs: 50, maxDelayMs: 200 } as const;
/** 2 * intervalMs + timeoutMs: the indicator's default staleness limit for HEARTBEAT. */
export const HEARTBEAT_BOUND_MS = 2 * HEARTBEAT.intervalMs + HEARTBEAT.timeoutMs;
export const GRACE_MS = 1_500;

export interface HttpResult {
  status: number;
  body: any;
  /** Time the request took. */
  ms: number;
}

/** One real HTTP request (global fetch) with a deadline; the body is parsed as JSON. */
export async function http(baseUrl: string, path: string, init: { method?: string; body?: unknown } = {}): Promise<HttpResult> {
  const started = Date.now();
  const response = await fetch(`${baseUrl}${path}`, {
    method: init.method ?? 'GET',
    headers: init.body === undefined ? undefined : { 'content-type': 'application/json' },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: AbortSignal.timeout(2_000),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, ms: Date.now() - started };
}

export interface TestSample extends SampleApp {
  logger: CaptureLogger;
}

/** The sample app on a free port of 127.0.0.1, with the small settings above (and `health` overrides). */
export async function startSample(redisUrl: string, health: RedisPubSubHealthOptions = {}): Promise<TestSample> {
  const logger = new CaptureLogger();
  const sample = await createSampleApp({
    redisUrl,
    port: 0,
    host: '127.0.0.1',
    heartbeat: HEARTBEAT,
    retry: RETRY,
    health: { gracePeriodMs: GRACE_MS, livenessTimeoutMs: 60_000, ...health },
    logger,
  });
  return Object.assign(sample, { logger });
}
