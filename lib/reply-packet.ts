import { isUtf8 } from 'node:buffer';
import type { Decoded, MessageCodec } from './codec.js';

/**
 * What a reply looks like on the wire, for both sides: Nest's `{ id, response | err, isDisposed }`
 * packet, published on the requester's `replyTo` channel or, in Nest's own Redis protocol, on
 * `<request channel>.reply`.
 */

/** The channel Nest's built-in Redis transport replies on for a request published on `channel`. */
export function nestReplyChannel(channel: string): string {
  return `${channel}.reply`;
}

/** The only keys of a Nest reply packet (`status` comes with Nest's "no handler" error). */
const REPLY_KEYS = new Set(['id', 'err', 'response', 'isDisposed', 'status']);

/**
 * A reply, never a request or an event: an object with a string `id`, no `pattern`, at least one of
 * `response`, `err`, `isDisposed`, and no other key than Nest's reply keys. A server answering Nest's
 * built-in client on `<channel>.reply` receives its own reply whenever one of its PSUBSCRIBE globs
 * matches that channel; this is how it recognises and drops it.
 */
export function isReplyPacket(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const packet = value as Record<string, unknown>;
  if (typeof packet.id !== 'string' || packet.pattern !== undefined) return false;
  if (packet.response === undefined && packet.err === undefined && packet.isDisposed === undefined) return false;
  for (const key in packet) if (!REPLY_KEYS.has(key)) return false;
  return true;
}

/** Ids are UUIDs (this client) or Nest's random strings: short, no quote or backslash. */
const ID_FIRST = /^\s*\{\s*"id"\s*:\s*"([^"\\]{1,128})"/;
const ID_LAST = /"id"\s*:\s*"([^"\\]{1,128})"\s*\}\s*$/;
const EDGE_BYTES = 200;

/**
 * The `id` of a JSON reply that cannot be decoded (too large, too deep, a forbidden key), read from
 * its first or last bytes only: `JSON.stringify` puts it last in replies of this transport's servers
 * and of Nest's, first in many hand-written responders. Lets the client fail that request at once
 * with the reason instead of letting it time out. Undefined for any other layout.
 */
export function replyIdOf(payload: Buffer): string | undefined {
  const head = ID_FIRST.exec(payload.subarray(0, EDGE_BYTES).toString('latin1'));
  if (head) return head[1];
  return ID_LAST.exec(payload.subarray(Math.max(0, payload.length - EDGE_BYTES)).toString('latin1'))?.[1];
}

/**
 * A reply's payload as the client's deserializer receives it: checked and parsed like any message
 * (size, UTF-8, depth, forbidden keys). With a custom deserializer (`raw`), a payload that is not
 * JSON, UTF-8 text or not, is handed over as the raw bytes (Nest's `returnBuffers` style), so
 * opaque and binary reply formats work; the size limit still applies first.
 */
export function decodeReply(codec: MessageCodec, payload: Buffer, raw: boolean, maxPayloadBytes: number): Decoded<unknown> {
  if (raw && payload.length <= maxPayloadBytes && !isUtf8(payload)) return { ok: true, value: payload };
  const parsed = codec.parse(payload);
  // The codec returns non-JSON text as is; a JSON string literal always decodes to fewer bytes (its quotes).
  if (raw && parsed.ok && typeof parsed.value === 'string' && Buffer.byteLength(parsed.value) === payload.length) {
    return { ok: true, value: payload };
  }
  return parsed;
}
