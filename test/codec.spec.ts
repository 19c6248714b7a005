import { MessageCodec, validatePacket } from '../lib/codec.js';

const codec = new MessageCodec(64, 3);
const parse = (text: string | Buffer) => codec.parse(Buffer.isBuffer(text) ? text : Buffer.from(text));

describe('MessageCodec (unit)', () => {
  it('parses JSON and keeps non-JSON text as a string', () => {
    expect(parse('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(parse('hello')).toEqual({ ok: true, value: 'hello' });
    expect(parse('')).toEqual({ ok: true, value: '' });
  });

  it('rejects a payload one byte over the limit, accepts one at the limit', () => {
    expect(parse('x'.repeat(64)).ok).toBe(true);
    expect(parse('x'.repeat(65))).toEqual({ ok: false, problem: 'payload of 65 bytes exceeds maxPayloadBytes (64)' });
  });

  it('counts bytes, not characters', () => {
    expect(parse('é'.repeat(33)).ok).toBe(false); // 66 bytes in UTF-8
  });

  it('rejects invalid UTF-8', () => {
    expect(parse(Buffer.from([0xc3, 0x28]))).toEqual({ ok: false, problem: 'payload is not valid UTF-8' });
  });

  it('accepts depth maxDepth and rejects maxDepth + 1', () => {
    const wide = new MessageCodec(1024, 3);
    expect(wide.parse(Buffer.from('[[[1]]]')).ok).toBe(true);
    expect(wide.parse(Buffer.from('[[[[1]]]]'))).toEqual({ ok: false, problem: 'JSON nested deeper than maxDepth (3)' });
  });

  it.each(['__proto__', 'constructor', 'prototype'])('rejects a "%s" key at any depth but accepts it as a value', (key) => {
    const wide = new MessageCodec(1024, 8);
    expect(wide.parse(Buffer.from(`{"a":[{"${key}":{}}]}`))).toEqual({ ok: false, problem: `forbidden key "${key}" (prototype pollution)` });
    expect(wide.parse(Buffer.from(`{"a":"${key}"}`)).ok).toBe(true);
  });

  it('treats an object with pattern or data as an envelope, anything else as data', () => {
    expect(codec.toPacket('ch', { pattern: 'p', data: 1 })).toEqual({ ok: true, value: { pattern: 'p', data: 1 } });
    expect(codec.toPacket('ch', { data: 1 })).toEqual({ ok: true, value: { data: 1 } });
    expect(codec.toPacket('ch', { other: 1 })).toEqual({ ok: true, value: { pattern: 'ch', data: { other: 1 } } });
    expect(codec.toPacket('ch', [1])).toEqual({ ok: true, value: { pattern: 'ch', data: [1] } });
    expect(codec.toPacket('ch', null)).toEqual({ ok: true, value: { pattern: 'ch', data: null } });
  });

  it('type-checks envelope fields', () => {
    expect(validatePacket({ pattern: { cmd: 'sum' }, data: 1 }).ok).toBe(true);
    expect(validatePacket({ pattern: ['x'], data: 1 })).toEqual({ ok: false, problem: 'envelope "pattern" must be a string or an object, got array' });
    expect(validatePacket({ data: 1, id: '' })).toEqual({ ok: false, problem: 'envelope "id" must be a non-empty string, got string' });
    expect(validatePacket({ data: 1, replyTo: 3 })).toEqual({ ok: false, problem: 'envelope "replyTo" must be a reply channel (__nestjs-redis-pubsub:reply:...), got number' });
    expect(validatePacket({ data: 1, replyTo: 'orders.created' })).toEqual({
      ok: false,
      problem: 'envelope "replyTo" must be a reply channel (__nestjs-redis-pubsub:reply:...), got "orders.created"',
    });
    expect(validatePacket({ data: 1, replyTo: '__nestjs-redis-pubsub:reply:abc' }).ok).toBe(true);
    expect(validatePacket({ data: 1, metadata: null })).toEqual({ ok: false, problem: 'envelope "metadata" must be an object, got null' });
    expect(validatePacket('x')).toEqual({ ok: false, problem: 'deserialized packet is not an object' });
  });
});
