import { inspect } from 'node:util';

export interface WaitForOptions {
  /** Overall deadline in ms (default 10 000). */
  timeoutMs?: number;
  /** Pause between two probes in ms (default 25). */
  intervalMs?: number;
  /** Prefix of the error thrown at the deadline. */
  message?: string;
}

/** Resolves after `ms`; the timer is always cleared or fired, so nothing stays open. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `probe` until it returns (or resolves to) a truthy value and returns that value.
 * A probe that throws counts as "not yet". At the deadline it throws
 * `Error(message + ': timed out after N ms; last value: ...; last error: ...')`.
 * A single probe that hangs is abandoned at the deadline (its result is ignored).
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  opts: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 25;
  const message = opts.message ?? 'waitFor: condition not met';
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  let lastValue: unknown = undefined;
  let lastError: unknown = undefined;
  let haveValue = false;

  for (;;) {
    attempts += 1;
    const remaining = deadline - Date.now();
    const outcome = await raceWithTimeout(probe, Math.max(remaining, 1));
    if (outcome.kind === 'value') {
      if (outcome.value) return outcome.value as NonNullable<T>;
      lastValue = outcome.value;
      haveValue = true;
      lastError = undefined;
    } else if (outcome.kind === 'error') {
      lastError = outcome.error;
    } else {
      lastError = new Error(`probe still pending after ${remaining} ms`);
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const parts = [`${message}: timed out after ${timeoutMs} ms (${attempts} attempts)`];
      if (haveValue) parts.push(`last value: ${inspect(lastValue, { depth: 4 })}`);
      if (lastError !== undefined) {
        parts.push(
          `last error: ${lastError instanceof Error ? lastError.stack ?? lastError.message : inspect(lastError)}`,
        );
      }
      throw new Error(parts.join('; '));
    }
    await delay(Math.min(intervalMs, left));
  }
}

type Outcome<T> = { kind: 'value'; value: T } | { kind: 'error'; error: unknown } | { kind: 'timeout' };

function raceWithTimeout<T>(probe: () => T | Promise<T>, ms: number): Promise<Outcome<T>> {
  return new Promise<Outcome<T>>((resolve) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      resolve({ kind: 'timeout' });
    }, ms);
    const finish = (outcome: Outcome<T>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    try {
      Promise.resolve(probe()).then(
        (value) => finish({ kind: 'value', value }),
        (error: unknown) => finish({ kind: 'error', error }),
      );
    } catch (error) {
      finish({ kind: 'error', error });
    }
  });
}
