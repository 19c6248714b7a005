import type { Logger } from '@nestjs/common';

/** One loss, as kept for `getStats().delivery.recentLosses` and health details. */
export interface LossRecord {
  /** `gap`: live events that never arrived; `unrecoverable`: a durable range the stream no longer holds. */
  kind: 'gap' | 'unrecoverable';
  channel: string;
  /** The publisher key for gaps; absent for durable ranges (they count stream offsets, not one publisher). */
  publisher?: string;
  missed: number;
  /** Epoch ms. */
  at: number;
}

const RECENT = 10;
const LOG_EVERY_MS = 5_000;

/**
 * Keeps the last few losses and logs them rate-limited: the first at once, the rest at most one
 * line per 5 s summing up what was held back, so a flapping link cannot flood the log.
 */
export class LossReport {
  readonly recent: LossRecord[] = [];
  private lastLogAt = 0;
  private heldBack = { losses: 0, events: 0 };

  constructor(private readonly logger: Logger) {}

  add(record: LossRecord, text: string): void {
    this.recent.push(record);
    if (this.recent.length > RECENT) this.recent.shift();
    if (record.at - this.lastLogAt < LOG_EVERY_MS) {
      this.heldBack.losses++;
      this.heldBack.events += record.missed;
      return;
    }
    const held = this.heldBack.losses > 0 ? ` (and ${this.heldBack.losses} more loss(es), ${this.heldBack.events} event(s), in the previous ${LOG_EVERY_MS / 1000} s)` : '';
    this.heldBack = { losses: 0, events: 0 };
    this.lastLogAt = record.at;
    this.logger.warn(`${text}${held}`);
  }
}
