import type { RetryOptions } from './options.js';

/**
 * Exponential backoff with jitter: the n-th delay is drawn from [base/2, base],
 * base = min(maxDelayMs, minDelayMs * 2^(n-1)). Jitter keeps a fleet of
 * subscribers from reconnecting in lockstep after a Redis restart; the cap keeps
 * the time from "Redis is back" to "reconnected" below maxDelayMs.
 * Returns `null` once `maxAttempts` is exhausted.
 */
export function backoffDelay(attempt: number, retry: Required<RetryOptions>, random: () => number = Math.random): number | null {
  if (attempt > retry.maxAttempts) return null;
  const base = Math.min(retry.maxDelayMs, retry.minDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base / 2 + (random() * base) / 2);
}

/** The same delays for a retry that never gives up (`maxAttempts` is the connection's business, not its). */
export function retryDelay(attempt: number, retry: Required<RetryOptions>): number {
  return backoffDelay(attempt, { ...retry, maxAttempts: Infinity })!;
}
