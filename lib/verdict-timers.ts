/**
 * Timers for liveness verdicts. Each verdict runs in a setImmediate after its
 * timer: when the event loop was blocked, the timer fires first, the poll phase
 * then reads whatever arrived meanwhile, and only then is the verdict taken.
 */
export class VerdictTimers {
  private readonly pending = new Set<NodeJS.Timeout | NodeJS.Immediate>();

  schedule(delayMs: number, verdict: () => void): void {
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      const immediate = setImmediate(() => {
        this.pending.delete(immediate);
        verdict();
      });
      this.pending.add(immediate);
    }, delayMs);
    this.pending.add(timer);
  }

  clear(): void {
    for (const handle of this.pending) {
      clearTimeout(handle as NodeJS.Timeout);
      clearImmediate(handle as NodeJS.Immediate);
    }
    this.pending.clear();
  }
}
