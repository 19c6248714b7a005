import { randomBytes } from 'node:crypto';

/**
 * Key of this library's delivery position in the envelope's `metadata`. Nest's built-in transport
 * and other metadata users (trace context, ...) ignore it; nothing else is read from or written to metadata here.
 */
export const POSITION_KEY = 'redisPubSub.position';

/**
 * Where one event stands in its publisher's sequence for its channel: `p` names the publisher
 * (random per client instance), `s` counts its events on that channel from 1. Durable events also
 * carry `d`, their place in the channel's stream: `"<epoch>:<offset>"` in the stream and
 * `"<epoch>:<offset>:<stream id>"` on the wire.
 */
export interface Position {
  p: string;
  s: number;
  d?: string;
}

/** `d` parsed: the stream's epoch (new whenever the stream is created afresh), a dense offset, the entry id. */
export interface StreamPosition {
  epoch: string;
  offset: number;
  id?: string;
}

/** At most this many channels get their own sequence in one client; older ones restart under a new publisher key. */
const MAX_STAMPED_CHANNELS = 10_000;

/**
 * The client's side: a publisher id per instance and a sequence per channel. A channel pushed
 * out of the bounded table (only with more than 10 000 distinct channels) restarts at 1 under a
 * fresh publisher key, so a subscriber never mistakes its new events for repeats.
 */
export class PositionStamper {
  readonly publisherId = randomBytes(9).toString('base64url');
  private readonly channels = new Map<string, { key: string; seq: number }>();
  private generation = 0;

  next(channel: string): Position {
    let entry = this.channels.get(channel);
    if (!entry) {
      if (this.channels.size >= MAX_STAMPED_CHANNELS) this.channels.delete(this.channels.keys().next().value!);
      const generation = this.generation++;
      entry = { key: generation === 0 ? this.publisherId : `${this.publisherId}.${generation.toString(36)}`, seq: 0 };
      this.channels.set(channel, entry);
    }
    return { p: entry.key, s: ++entry.seq };
  }
}

/**
 * Puts the next position (taken only then, so no sequence number is burnt) into a serialized envelope's metadata (a new metadata object: the caller's is not
 * touched). Returns false when the serializer produced something that is not an envelope object.
 */
export function stampEnvelope(envelope: unknown, position: () => Position): boolean {
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) return false;
  const target = envelope as { metadata?: Record<string, unknown> };
  const metadata = target.metadata;
  target.metadata = typeof metadata === 'object' && metadata !== null ? { ...metadata, [POSITION_KEY]: position() } : { [POSITION_KEY]: position() };
  return true;
}

export type PositionRead = { ok: true; position: Position | undefined } | { ok: false; problem: string };

/** Reads and checks the position of an incoming envelope's metadata; none is fine (raw PUBLISH, other clients). */
export function readPosition(metadata: Record<string, unknown> | undefined): PositionRead {
  const raw = metadata?.[POSITION_KEY];
  if (raw === undefined) return { ok: true, position: undefined };
  const value = raw as Partial<Position> | null;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof value.p !== 'string' ||
    value.p.length === 0 ||
    value.p.length > 64 ||
    !Number.isSafeInteger(value.s) ||
    value.s! < 1 ||
    (value.d !== undefined && (typeof value.d !== 'string' || parseStreamPosition(value.d) === undefined))
  ) {
    return { ok: false, problem: `metadata "${POSITION_KEY}" is malformed: ${JSON.stringify(raw).slice(0, 100)}` };
  }
  return { ok: true, position: value as Position };
}

export function parseStreamPosition(text: string): StreamPosition | undefined {
  const [epoch, offsetText, id, extra] = text.split(':');
  const offset = Number(offsetText);
  if (extra !== undefined || !epoch || !Number.isSafeInteger(offset) || offset < 1 || id === '') return undefined;
  return id === undefined ? { epoch, offset } : { epoch, offset, id };
}
