/**
 * Decides which failed connection attempts are logged, so an outage does not flood the log
 * (with the default backoff, capped at 250 ms, a dead Redis fails up to eight attempts per second per connection):
 * news (a new outage, or a cause that differs from the last one logged) at most once per
 * `newsEveryMs`, the same failure again at most once per `repeatEveryMs`. Each logged line says
 * how many failed attempts went unlogged before it.
 */
export class RetryLog {
  private lastAt = -Infinity;
  private lastCause?: string;
  private unlogged = 0;

  constructor(
    private readonly repeatEveryMs = 10_000,
    private readonly newsEveryMs = 1_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** `null`: stay silent. Otherwise log, and this many earlier failures were not logged. */
  admit(attempt: number, cause: string): number | null {
    const now = this.now();
    const news = attempt === 1 || cause !== this.lastCause;
    const every = news ? this.newsEveryMs : this.repeatEveryMs;
    if (now - this.lastAt < every) {
      this.unlogged++;
      return null;
    }
    const unlogged = this.unlogged;
    this.lastAt = now;
    this.lastCause = cause;
    this.unlogged = 0;
    return unlogged;
  }
}
