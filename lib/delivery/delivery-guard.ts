import type { TransportLink } from '../transport-link.js';
import { LossReport, type LossRecord } from './loss-report.js';
import { PositionTracker, type Hole } from './position-tracker.js';
import { DurableChannels, type DurableLoss } from './durable-recovery.js';
import { DurableReader } from './durable-stream.js';
import { parseStreamPosition, readPosition } from './position.js';

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
  private readonly durable: DurableChannels;
  /** Gaps seen while a replaced subscriber socket drains: late events may still fill them. */
  private pendingGaps: Array<{ channel: string; pattern: string | undefined; publisher: string; missed: number; hole: Hole }> = [];

  /** `replay` delivers an event read back from a durable stream, as if it had just arrived. */
  constructor(
    private readonly link: TransportLink,
    private readonly reject: (channel: string, problem: string) => void,
    replay: (channel: string, payload: Buffer) => void,
  ) {
    this.losses = new LossReport(link.logger);
    // Durable channels are standalone only (refused with `cluster`): the one publisher reads their streams.
    const reader = new DurableReader(() => link.unwrap()[0]!);
    const waiting: Array<() => void> = [];
    link.onPublisherUsable(() => waiting.splice(0).forEach((resolve) => resolve()));
    const publisherReady = () => (link.canPublish('') ? Promise.resolve() : new Promise<void>((resolve) => waiting.push(resolve)));
    this.durable = new DurableChannels(link, reader, publisherReady, replay, (loss) => this.unrecoverable(loss));
    // A subscriber socket that just became the one delivering (after a reconnect, or a cut-over once the
    // replacement's held events were routed) may have missed what was published meanwhile: catch up.
    // The first connect is anchored by started() instead.
    link.signals.on('delivering', ({ cause }) => {
      if (cause !== 'connect') this.durable.recoverAll();
    });
    link.signals.on('drained', () => this.settlePendingGaps());
  }

  /** A channel whose handler asked for `{ durable: true }`. */
  addDurable(channel: string): void {
    this.durable.add(channel);
  }

  /** Once subscribed: the durable channels start from the current end of their streams (resolves once read). */
  started(): Promise<void> {
    return this.durable.anchorAll();
  }

  close(): void {
    this.durable.close();
  }

  /** `replayed`: read back from a durable stream by a recovery, which already checked its offset. */
  admit(channel: string, pattern: string | undefined, metadata: Record<string, unknown> | undefined, replayed = false): boolean {
    const durable = pattern === undefined && this.durable.size > 0 && this.durable.has(channel);
    if (metadata === undefined) {
      if (durable) this.durable.warnUnstamped(channel);
      return true;
    }
    const read = readPosition(metadata);
    if (!read.ok) {
      this.reject(channel, read.problem);
      return false;
    }
    const position = read.position;
    const inStream = durable && position?.d !== undefined;
    if (durable && !inStream) this.durable.warnUnstamped(channel);
    if (position === undefined) return true;
    if (inStream && !replayed) {
      const verdict = this.durable.admitLive(channel, parseStreamPosition(position.d!)!);
      if (verdict === 'skip') return false;
      if (verdict === 'duplicate') {
        this.link.counters.duplicates++;
        return false;
      }
    }
    // A channel subscription and a pattern matching the same channel each receive the event once.
    // While an old socket drains after a cut-over, a jump may be filled by its late events: judged when it drained.
    const missed = this.tracker.check(pattern ?? '', channel, position.p, position.s, this.link.splicing);
    if (missed < 0) {
      // Also catches a durable event appended twice (a requireReceiver retry).
      this.link.counters.duplicates++;
      return false;
    }
    if (inStream) {
      if (this.durable.firstAfterEpochChange(channel, position.p) && missed > 0) {
        this.unrecoverable({ channel, missed, reason: 'stream-lost', publisher: position.p });
      }
    } else if (missed > 0) {
      const hole = this.tracker.opened;
      if (hole) this.pendingGaps.push({ channel, pattern, publisher: position.p, missed, hole });
      else this.gap(channel, pattern, position.p, missed);
    }
    return true;
  }

  stats(): DeliveryStats {
    return { trackedPositions: this.tracker.size, recentLosses: this.losses.recent.map((loss) => ({ ...loss })) };
  }

  /** What late events did not fill is lost. */
  private settlePendingGaps(): void {
    const pending = this.pendingGaps;
    this.pendingGaps = [];
    this.tracker.forgetHoles();
    for (const { channel, pattern, publisher, missed, hole } of pending) {
      if (missed > hole.filled) this.gap(channel, pattern, publisher, missed - hole.filled);
    }
  }

  private unrecoverable(loss: DurableLoss): void {
    const { channel, missed, reason, publisher } = loss;
    this.link.counters.lost += missed;
    const why = reason === 'trimmed' ? 'already trimmed from its stream (past maxLen/maxAgeMs)' : 'published to a stream that was lost or replaced (Redis restarted without persistence, or another Redis)';
    this.losses.add({ kind: 'unrecoverable', channel, ...(publisher === undefined ? {} : { publisher }), missed, at: Date.now() }, `Cannot recover ${missed} event(s) on durable channel "${channel}": ${why}`);
    this.link.events.emit('unrecoverable', loss);
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
