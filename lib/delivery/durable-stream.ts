import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { INTERNAL_CHANNEL_PREFIX } from '../constants.js';
import { parseStreamPosition, POSITION_KEY, type Position, type StreamPosition } from './position.js';

/** Retention of one durable channel's stream. */
export interface DurableChannelOptions {
  /** Events kept at least (trimmed with `MAXLEN ~`, so Redis may keep up to ~100 more). Default 10 000. */
  maxLen?: number;
  /** Events older than this are trimmed (`MINID ~`: in whole stream nodes), whatever `maxLen` says. Default: no age limit. */
  maxAgeMs?: number;
}

export const DEFAULT_DURABLE_MAX_LEN = 10_000;

/**
 * The stream and its meta hash (offset counter, epoch) of a durable channel. Both carry the
 * channel's Redis Cluster hash slot: `{channel}` as hash tag, or the channel's own hash tag when it
 * has one, so one script can touch both keys and publish (the channel is not a key, but SPUBLISH on
 * a cluster would need the same slot too). A channel with a `{` but no valid hash tag cannot be
 * pinned to its own slot this way.
 */
export function durableKeys(channel: string): { stream: string; meta: string } {
  const tagged = hasHashTag(channel) ? channel : `{${channel}}`;
  return { stream: `${INTERNAL_CHANNEL_PREFIX}:durable:${tagged}`, meta: `${INTERNAL_CHANNEL_PREFIX}:durable-meta:${tagged}` };
}

function hasHashTag(channel: string): boolean {
  const open = channel.indexOf('{');
  return open >= 0 && channel.indexOf('}', open + 1) > open + 1;
}

/**
 * One atomic step per durable event: count the offset (a new stream gets a new epoch), XADD the
 * event with its position to the capped stream, trim by age, PUBLISH it with its position and
 * stream id. Returns PUBLISH's receiver count. The position is spliced into the caller's JSON text
 * (head .. position .. tail), so the payload is published byte for byte as serialized.
 * TIME is allowed before writes because Redis 7 replicates scripts by their effects.
 */
const PUBLISH_SCRIPT = `
local offset = redis.call('HINCRBY', KEYS[2], 'offset', 1)
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
local position = epoch .. ':' .. offset
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[2] .. position .. ARGV[3])
if ARGV[5] ~= '0' then
  local now = redis.call('TIME')
  redis.call('XTRIM', KEYS[1], 'MINID', '~', (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) - tonumber(ARGV[5]))
end
return redis.call('PUBLISH', ARGV[1], ARGV[2] .. position .. ':' .. id .. ARGV[3])
`;

const COMMAND = 'nestjsRedisPubSubDurablePublish';

type ScriptedRedis = Redis & { [COMMAND](...args: Array<string | number>): Promise<number> };

/** The event's JSON text split where the script writes the stream position. */
export interface DurableFrame {
  head: string;
  tail: string;
}

/** Client side: which channels are durable, and publishing to them through the script. */
export class DurablePublisher {
  private readonly channels: Map<string, { keys: { stream: string; meta: string }; maxLen: number; maxAgeMs: number }>;
  /** Written into the position, then split on: random, so no user data can contain it. */
  private readonly marker = randomBytes(12).toString('base64url');

  constructor(channels: Record<string, DurableChannelOptions> = {}) {
    this.channels = new Map(
      Object.entries(channels).map(([channel, options]) => [
        channel,
        { keys: durableKeys(channel), maxLen: options.maxLen ?? DEFAULT_DURABLE_MAX_LEN, maxAgeMs: options.maxAgeMs ?? 0 },
      ]),
    );
  }

  has(channel: string): boolean {
    return this.channels.has(channel);
  }

  /** The position a durable event is stamped with before serializing: the script fills in `d`. */
  placeholder(position: Position): Position {
    return { ...position, d: this.marker };
  }

  /** Splits serialized JSON at the placeholder; undefined when it is not there exactly once. */
  frame(json: string): DurableFrame | undefined {
    const quoted = `"${this.marker}"`;
    const at = json.indexOf(quoted);
    if (at < 0 || json.indexOf(quoted, at + 1) >= 0) return undefined;
    return { head: json.slice(0, at + 1), tail: json.slice(at + quoted.length - 1) };
  }

  /**
   * EVALSHA, and EVAL when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH): ioredis'
   * defineCommand does that fallback itself (pinned by a test). One round trip per event.
   */
  publish(redis: Redis, channel: string, frame: DurableFrame): Promise<number> {
    const settings = this.channels.get(channel)!;
    const scripted = redis as ScriptedRedis;
    if (typeof scripted[COMMAND] !== 'function') redis.defineCommand(COMMAND, { numberOfKeys: 2, lua: PUBLISH_SCRIPT });
    // A new epoch candidate per call: used only when the meta hash does not exist (a new or lost stream).
    const epoch = randomBytes(6).toString('base64url');
    return scripted[COMMAND](settings.keys.stream, settings.keys.meta, channel, frame.head, frame.tail, settings.maxLen, settings.maxAgeMs, epoch);
  }
}


/** One entry read back from a durable stream: its id, its position and the event as published (minus the id). */
export interface StreamEntry {
  id: string;
  position: StreamPosition;
  payload: Buffer;
}

/** Server side: reads a durable channel's stream (on the publisher connection). */
export class DurableReader {
  constructor(private readonly redis: () => Redis) {}

  /** The stream's epoch and the last offset it gave out; undefined when the stream (and its meta) do not exist. */
  async meta(channel: string): Promise<{ epoch: string; offset: number } | undefined> {
    const [epoch, offset] = await this.redis().hmget(durableKeys(channel).meta, 'epoch', 'offset');
    return epoch && offset ? { epoch, offset: Number(offset) } : undefined;
  }

  /** Up to `count` entries after `afterId` (from the start when undefined), in order. */
  async range(channel: string, afterId: string | undefined, count: number): Promise<StreamEntry[]> {
    const raw = await this.redis().xrangeBuffer(durableKeys(channel).stream, afterId ? `(${afterId}` : '-', '+', 'COUNT', count);
    return raw.map(([id, fields]) => toEntry(id.toString(), fields));
  }

  /** The newest entry, if any. */
  async last(channel: string): Promise<StreamEntry | undefined> {
    const raw = await this.redis().xrevrangeBuffer(durableKeys(channel).stream, '+', '-', 'COUNT', 1);
    return raw.length > 0 ? toEntry(raw[0][0].toString(), raw[0][1]) : undefined;
  }
}

/** Reads the entry's position from its metadata (recovery is not the hot path: a full parse is fine). */
function toEntry(id: string, fields: Buffer[]): StreamEntry {
  const payload = fields[1] ?? Buffer.alloc(0);
  let d: unknown;
  try {
    d = (JSON.parse(payload.toString()) as { metadata?: Record<string, { d?: unknown } | undefined> }).metadata?.[POSITION_KEY]?.d;
  } catch {
    d = undefined;
  }
  const position = typeof d === 'string' ? parseStreamPosition(d) : undefined;
  // Not written by our script: offset 0 is never taken for a new event.
  return { id, position: position ?? { epoch: '', offset: 0 }, payload };
}
