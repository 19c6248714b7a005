import { backoffDelay } from '../lib/backoff.js';
import { DEFAULTS } from '../lib/options.js';

const retry = { minDelayMs: 100, maxDelayMs: 1_000, maxAttempts: 5 };

describe('backoffDelay (unit)', () => {
  it('doubles from minDelayMs up to maxDelayMs, with jitter in [base/2, base]', () => {
    const low = (n: number) => backoffDelay(n, retry, () => 0);
    const high = (n: number) => backoffDelay(n, retry, () => 1);
    expect([1, 2, 3, 4, 5].map(low)).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map(high)).toEqual([100, 200, 400, 800, 1000]);
  });

  it('stops after maxAttempts and retries forever without it', () => {
    expect(backoffDelay(6, retry)).toBeNull();
    expect(backoffDelay(1_000_000, { ...retry, maxAttempts: Infinity }, () => 1)).toBe(1_000);
  });

  it('by default, no wait between attempts exceeds 250 ms: back within a quarter second of Redis returning', () => {
    const retry = { ...DEFAULTS.retry };
    const high = (n: number) => backoffDelay(n, retry, () => 1);
    expect([1, 2, 3, 4, 5, 100].map(high)).toEqual([50, 100, 200, 250, 250, 250]);
    expect(backoffDelay(100, retry, () => 0)).toBe(125);
  });
});
