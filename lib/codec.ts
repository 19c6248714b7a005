import { isUtf8 } from 'node:buffer';
import { REPLY_CHANNEL_PREFIX } from './constants.js';

/** What a handler receives, after validation. */
export interface IncomingPacket {
  pattern: unknown;
  data: unknown;
  /** Present on requests (`send()`); events have none. */
  id?: string;
  /** Reply channel of the requesting client; absent from Nest's built-in client. */
  replyTo?: string;
  metadata?: Record<string, unknown>;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; problem: string };

/**
 * Turns raw pub/sub payloads into packets without trusting them: size is checked
 * before any parsing, bytes must be UTF-8, JSON is checked for nesting depth and
 * prototype-polluting keys, and envelope fields are type-checked. Anything that
 * fails becomes a `problem` string for the caller to log and count.
 */
export class MessageCodec {
  /** The walk's explicit stack, reused by every parse() (it is synchronous): no allocation per message. */
  private readonly stack: Array<object | undefined> = [];
  private readonly depths: number[] = [];

  constructor(
    private readonly maxPayloadBytes: number,
    private readonly maxDepth: number,
  ) {}

  /** Bytes -> JSON value, or the text itself when it is not JSON (as Nest's built-in transport does). */
  parse(payload: Buffer): Decoded<unknown> {
    if (payload.length > this.maxPayloadBytes) {
      return { ok: false, problem: `payload of ${payload.length} bytes exceeds maxPayloadBytes (${this.maxPayloadBytes})` };
    }
    // One pass: the decoder turns every invalid sequence into U+FFFD, so the bytes only need
    // checking when one appears (it may also be a legitimately encoded U+FFFD).
    const text = payload.toString();
    if (text.includes('\uFFFD') && !isUtf8(payload)) return { ok: false, problem: 'payload is not valid UTF-8' };
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return { ok: true, value: text };
    }
    if (typeof value === 'object' && value !== null) {
      const problem = inspect(value, this.maxDepth, this.stack, this.depths);
      if (problem) return { ok: false, problem };
    }
    return { ok: true, value };
  }

  /** Nest's envelope rule: an object with `pattern` or `data` is an envelope; anything else is the data itself. */
  toPacket(channel: string, value: unknown): Decoded<IncomingPacket> {
    if (isPlainObject(value) && (value.pattern !== undefined || value.data !== undefined)) {
      return validatePacket(value);
    }
    return { ok: true, value: { pattern: channel, data: value } };
  }
}

/** Checks a packet's envelope fields; also applied to what a custom deserializer returns. */
export function validatePacket(value: unknown): Decoded<IncomingPacket> {
  if (!isPlainObject(value)) return { ok: false, problem: 'deserialized packet is not an object' };
  const { pattern, id, replyTo, metadata } = value;
  // A number is a legal Nest pattern too (`MsPattern`), as sent by Nest's built-in client.
  if (pattern !== undefined && typeof pattern !== 'string' && typeof pattern !== 'number' && !isPlainObject(pattern)) {
    return { ok: false, problem: `envelope "pattern" must be a string, a number or an object, got ${typeName(pattern)}` };
  }
  if (id !== undefined && (typeof id !== 'string' || id.length === 0)) {
    return { ok: false, problem: `envelope "id" must be a non-empty string, got ${typeName(id)}` };
  }
  // Only a client's own reply channel: otherwise a sender could make the server publish into any channel.
  if (replyTo !== undefined && (typeof replyTo !== 'string' || !replyTo.startsWith(REPLY_CHANNEL_PREFIX))) {
    return { ok: false, problem: `envelope "replyTo" must be a reply channel (${REPLY_CHANNEL_PREFIX}...), got ${describeValue(replyTo)}` };
  }
  if (metadata !== undefined && !isPlainObject(metadata)) {
    return { ok: false, problem: `envelope "metadata" must be an object, got ${typeName(metadata)}` };
  }
  return { ok: true, value: value as unknown as IncomingPacket };
}

/**
 * One walk checks depth and keys. It is iterative (an explicit stack, not recursion), so no
 * nesting and no `maxDepth` can overflow the call stack. for...in over JSON.parse output
 * allocates nothing, and it sees keys however they were spelled in the text (`"\u005f_proto__"`
 * included). Which problem is reported when a message has several is unspecified.
 */
function inspect(root: object, maxDepth: number, stack: Array<object | undefined>, depths: number[]): string | undefined {
  let problem: string | undefined;
  let value = root;
  let childDepth = 2;
  let top = 0;
  let used = 0;
  walk: for (;;) {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (typeof item === 'object' && item !== null) {
          if (childDepth > maxDepth) {
            problem = `JSON nested deeper than maxDepth (${maxDepth})`;
            break walk;
          }
          stack[top] = item;
          depths[top++] = childDepth;
        }
      }
    } else {
      for (const key in value) {
        // Plain comparisons: JSON keys are internalized strings, cheaper than a Set lookup.
        if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
          problem = `forbidden key "${key}" (prototype pollution)`;
          break walk;
        }
        const item: unknown = (value as Record<string, unknown>)[key];
        if (typeof item === 'object' && item !== null) {
          if (childDepth > maxDepth) {
            problem = `JSON nested deeper than maxDepth (${maxDepth})`;
            break walk;
          }
          if (!Array.isArray(item)) {
            stack[top] = item;
            depths[top++] = childDepth;
            continue;
          }
          // An array is opened in place (arrays of primitives, like tags, are common): only its
          // containers go on the stack, one level deeper.
          for (let i = 0; i < item.length; i++) {
            const element: unknown = item[i];
            if (typeof element === 'object' && element !== null) {
              if (childDepth >= maxDepth) {
                problem = `JSON nested deeper than maxDepth (${maxDepth})`;
                break walk;
              }
              stack[top] = element;
              depths[top++] = childDepth + 1;
            }
          }
        }
      }
    }
    if (top > used) used = top;
    if (top === 0) break;
    value = stack[--top]!;
    childDepth = depths[top]! + 1;
  }
  // Hold no reference to a message once it is checked.
  for (let i = Math.max(used, top) - 1; i >= 0; i--) stack[i] = undefined;
  return problem;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeValue(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 100)) : typeName(value);
}

function typeName(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}
