import type { PubSubLink } from '../pubsub-link.js';
import { LossReport, type LossRecord } from './loss-report.js';
import { PositionTracker } from './position-tracker.js';
import { readPosition } from './position.js';

/** `getStats().delivery` of a server. */
export interface DeliveryStats {
  /** (subscription, channel, publisher) positions held for gap and duplicate detection (bounded). */
  trackedPositions: number;
  /** The last 10 losses, oldest first. */
  recentLosses: LossRecord[];
}

/**
 * Decides, per incoming event, whether it goes on to its handler: events stamped by our clients
 * are checked against the last position of their publisher on that channel. A jump is a gap
 * (reported, counted in `messages.lost`, delivered); a repeat or an older event is dropped and
 * counted in `messages.duplicates`. Unstamped events pass untouched.
 */
export class DeliveryGuard {
  private readonly tracker = new PositionTracker();
  private readonly losses: LossReport;

  constructor(
    private readonly link: PubSubLink,
    private readonly reject: (channel: string, problem: string) => void,
  ) {
    this.losses = new LossReport(link.logger);
  }

  admit(channel: string, pattern: string | undefined, metadata: Record<string, unknown> | undefined): boolean {
    if (metadata === undefined) return true;
    const read = readPosition(metadata);
    if (!read.ok) {
      this.reject(channel, read.problem);
      return false;
    }
    const position = read.position;
    if (position === undefined) return true;
    // A channel subscription and a pattern matching the same channel each receive the event once.
    const scope = pattern === undefined ? channel : `${pattern}\u0000${channel}`;
    const missed = this.tracker.check(scope, position.p, position.s);
    if (missed < 0) {
      this.link.counters.duplicates++;
      return false;
    }
    if (missed > 0) this.gap(channel, pattern, position.p, missed);
    return true;
  }

  stats(): DeliveryStats {
    return { trackedPositions: this.tracker.size, recentLosses: this.losses.recent.map((loss) => ({ ...loss })) };
  }

  private gap(channel: string, pattern: string | undefined, publisher: string, missed: number): void {
    this.link.counters.lost += missed;
    this.losses.add(
      { kind: 'gap', channel, publisher, missed, at: Date.now() },
      `Lost ${missed} event(s) on channel "${channel}" from publisher ${publisher}: they were published while this subscriber could not receive them`,
    );
    this.link.events.emit('gap', { channel, ...(pattern === undefined ? {} : { pattern }), publisher, missed });
  }
}
