import { errorText } from '../error-text.js';
import type { TransportLink } from '../transport-link.js';
import type { DurableReader } from './durable-stream.js';
import type { StreamPosition } from './position.js';

/** Entries read per XRANGE while catching up. */
const PAGE = 500;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2_000;

/** Why a durable range cannot be delivered. */
export type UnrecoverableReason = 'trimmed' | 'stream-lost';

interface ChannelState {
  /** false until anchored at start or set by the first live event. */
  known: boolean;
  /** The stream's epoch; '' while the stream does not exist. */
  epoch: string;
  /** Last offset delivered (or the anchor). */
  offset: number;
  /** Stream id of `offset`, when known: the exclusive start of the next XRANGE. */
  id?: string;
  /** Anchored at start and nothing delivered yet: live events at or below the anchor are still new to us. */
  fresh: boolean;
  /** Highest offset delivered from the stream: live copies up to it are the replay's overlap, not duplicates. */
  replayedUpTo: number;
  recovering: boolean;
  /** Something arrived or was asked for during a recovery pass: run another one. */
  again: boolean;
  /** The stream was lost or replaced since we last held a position in it: publisher jumps are the only measure of what was lost. */
  epochChanged: boolean;
  seenInEpoch: Set<string>;
  warnedUnstamped: boolean;
}

export type LiveVerdict = 'deliver' | 'duplicate' | 'skip';

export interface DurableLoss {
  channel: string;
  missed: number;
  reason: UnrecoverableReason;
  publisher?: string;
}

/**
 * Server side of durable channels. Remembers the last stream position handled per channel
 * (in memory). Live events are delivered while they are the next offset; on a jump, a new epoch,
 * or any resubscription it reads the missed range from the stream and delivers it in order before
 * newer live events. Live events arriving during a recovery are not buffered: they are in the
 * stream, and the recovery reads again until it has caught up, so memory stays bounded.
 */
export class DurableChannels {
  private readonly states = new Map<string, ChannelState>();
  private closed = false;
  /** Pending retry pauses: close() ends them at once. */
  private readonly pauses = new Map<NodeJS.Timeout, () => void>();

  constructor(
    private readonly link: TransportLink,
    private readonly reader: DurableReader,
    /** Resolves once the connection the reader uses is up (a recovery waits for it rather than failing). */
    private readonly readerReady: () => Promise<void>,
    private readonly replay: (channel: string, payload: Buffer) => void,
    private readonly unrecoverable: (loss: DurableLoss) => void,
  ) {}

  add(channel: string): void {
    this.states.set(channel, {
      known: false,
      epoch: '',
      offset: 0,
      fresh: false,
      replayedUpTo: 0,
      recovering: false,
      again: false,
      epochChanged: false,
      seenInEpoch: new Set(),
      warnedUnstamped: false,
    });
  }

  has(channel: string): boolean {
    return this.states.has(channel);
  }

  get size(): number {
    return this.states.size;
  }

  /** Whether a live durable event goes on now; 'skip' events are (or will be) delivered from the stream. */
  admitLive(channel: string, position: StreamPosition): LiveVerdict {
    const state = this.states.get(channel)!;
    if (!state.known) {
      Object.assign(state, { known: true, epoch: position.epoch, offset: position.offset, id: position.id });
      return 'deliver';
    }
    if (position.epoch === state.epoch && position.offset <= state.offset) {
      if (state.fresh) return 'deliver';
      return position.offset <= state.replayedUpTo || state.recovering ? 'skip' : 'duplicate';
    }
    if (state.recovering) {
      state.again = true;
      return 'skip';
    }
    // The next offset, or the first event of a stream that did not exist when we last looked.
    if ((position.epoch === state.epoch || state.epoch === '') && position.offset === state.offset + 1) {
      state.epoch = position.epoch;
      state.offset = position.offset;
      state.id = position.id;
      state.fresh = false;
      return 'deliver';
    }
    void this.recover(channel, position.epoch === state.epoch ? 'gap' : 'new-epoch');
    return 'skip';
  }

  /**
   * Whether a publisher's sequence jump on a durable channel measures a loss: only for its first
   * event after the stream was lost or replaced (the old stream's tail is gone, and only the
   * publisher's sequence can tell how much of it we missed). Within one epoch the offsets are the
   * measure: a jump there is an emit() that failed, or a range already reported as trimmed.
   */
  firstAfterEpochChange(channel: string, publisher: string): boolean {
    const state = this.states.get(channel)!;
    if (!state.epochChanged || state.seenInEpoch.has(publisher)) return false;
    state.seenInEpoch.add(publisher);
    return true;
  }

  /** Warns once per channel: a durable handler got an event its publisher did not make durable. */
  warnUnstamped(channel: string): void {
    const state = this.states.get(channel)!;
    if (state.warnedUnstamped) return;
    state.warnedUnstamped = true;
    this.link.logger.warn(
      `Durable channel "${channel}" received an event without a stream position: its publisher does not list "${channel}" in its durable option, so such events cannot be recovered`,
    );
  }

  /** "Start from now": the stream's current end becomes the position of every channel not yet set by a live event. */
  async anchorAll(): Promise<void> {
    await Promise.all([...this.states.keys()].map((channel) => this.anchor(channel)));
  }

  /** Whenever a new subscriber socket becomes the one delivering (reconnect, cut-over): catch up on what was published meanwhile. */
  recoverAll(): void {
    for (const [channel, state] of this.states) {
      if (state.known) void this.recover(channel, 'resubscribed');
    }
  }

  close(): void {
    this.closed = true;
    for (const [timer, resolve] of this.pauses) {
      clearTimeout(timer);
      resolve();
    }
    this.pauses.clear();
  }

  private async anchor(channel: string): Promise<void> {
    const state = this.states.get(channel)!;
    for (let attempt = 1; !this.closed && !state.known; attempt++) {
      try {
        const [meta, last] = await Promise.all([this.reader.meta(channel), this.reader.last(channel)]);
        if (state.known) return;
        if (!meta) Object.assign(state, { known: true, epoch: '', offset: 0, id: undefined });
        else if (last && last.position.epoch === meta.epoch) Object.assign(state, { known: true, epoch: meta.epoch, offset: last.position.offset, id: last.id, fresh: true });
        else Object.assign(state, { known: true, epoch: meta.epoch, offset: meta.offset, id: undefined, fresh: true });
      } catch (error) {
        await this.pause(attempt, `reading the position of durable channel "${channel}" failed: ${errorText(error)}`);
      }
    }
  }

  private async recover(channel: string, reason: 'gap' | 'new-epoch' | 'resubscribed'): Promise<void> {
    const state = this.states.get(channel)!;
    if (state.recovering) {
      state.again = true;
      return;
    }
    state.recovering = true;
    const startedAt = Date.now();
    let replayed = 0;
    let attempt = 0;
    try {
      do {
        state.again = false;
        try {
          await this.readerReady();
          replayed += await this.pass(channel, state);
          attempt = 0;
        } catch (error) {
          state.again = true;
          await this.pause(++attempt, `recovering durable channel "${channel}" failed: ${errorText(error)}`);
        }
      } while (state.again && !this.closed);
    } finally {
      state.recovering = false;
    }
    if (this.closed) return;
    const durationMs = Date.now() - startedAt;
    if (replayed > 0) this.link.logger.log(`Recovered ${replayed} event(s) on durable channel "${channel}" from its stream in ${durationMs} ms (${reason})`);
    this.link.events.emit('recovered', { channel, replayed, durationMs, reason });
  }

  /** One catch-up pass: the stream's epoch, then every entry after our position, page by page. */
  private async pass(channel: string, state: ChannelState): Promise<number> {
    const meta = await this.reader.meta(channel);
    if (!meta) {
      // The stream is gone (Redis restarted without persistence, or another Redis): nothing to read until new events create it.
      if (state.epoch !== '') Object.assign(state, { epochChanged: true, seenInEpoch: new Set(), epoch: '', offset: 0, id: undefined, fresh: false, replayedUpTo: 0 });
      return 0;
    }
    if (meta.epoch !== state.epoch) {
      if (state.epoch !== '') Object.assign(state, { epochChanged: true, seenInEpoch: new Set() });
      Object.assign(state, { epoch: meta.epoch, offset: 0, id: undefined, fresh: false, replayedUpTo: 0 });
    }
    let replayed = 0;
    for (;;) {
      const entries = await this.reader.range(channel, state.id, PAGE);
      if (this.closed) return replayed;
      for (const entry of entries) {
        const { epoch, offset } = entry.position;
        if (epoch !== state.epoch || offset <= state.offset) continue;
        this.trimmed(channel, state, offset - 1);
        Object.assign(state, { offset, id: entry.id, fresh: false, replayedUpTo: offset });
        replayed++;
        this.replay(channel, entry.payload);
      }
      if (entries.length < PAGE) break;
      state.id = entries[entries.length - 1].id;
    }
    // Offsets given out before our read that the stream no longer holds (trimmed by age or length).
    this.trimmed(channel, state, meta.offset);
    return replayed;
  }

  /** Offsets after ours up to `upTo` are gone from the stream: report them and move past them. */
  private trimmed(channel: string, state: ChannelState, upTo: number): void {
    const missed = upTo - state.offset;
    if (missed <= 0) return;
    state.offset = upTo;
    this.unrecoverable({ channel, missed, reason: 'trimmed' });
  }

  private pause(attempt: number, problem: string): Promise<void> {
    const delayMs = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (attempt - 1));
    if (attempt === 1 || attempt % 10 === 0) this.link.logger.warn(`${problem}; retrying in ${delayMs} ms`);
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.pauses.delete(timer);
        resolve();
      }, delayMs);
      this.pauses.set(timer, resolve);
    });
  }
}
