import { MessageCodec } from '../lib/codec.js';
import { decodeReply, isReplyPacket, replyIdOf } from '../lib/reply-packet.js';

describe('reply packets (pure logic)', () => {
  it('recognises Nest reply packets, and nothing else, as replies', () => {
    expect(isReplyPacket({ id: 'a', response: 1, isDisposed: true })).toBe(true);
    expect(isReplyPacket({ id: 'a', err: 'x' })).toBe(true);
    expect(isReplyPacket({ id: 'a', status: 'error', err: 'no handler' })).toBe(true);
    expect(isReplyPacket({ id: 'a', isDisposed: true })).toBe(true);
    expect(isReplyPacket({ pattern: 'p', id: 'a', data: 1 })).toBe(false); // a request
    expect(isReplyPacket({ pattern: 'p', id: 'a', response: 1 })).toBe(false);
    expect(isReplyPacket({ id: 'a' })).toBe(false);
    expect(isReplyPacket({ id: 'a', status: 'ok' })).toBe(false);
    expect(isReplyPacket({ id: 7, response: 1 })).toBe(false);
    expect(isReplyPacket({ id: 'a', response: 1, user: 'x' })).toBe(false); // a foreign event that happens to look alike
    expect(isReplyPacket([{ id: 'a', response: 1 }])).toBe(false);
    expect(isReplyPacket('{"id":"a","response":1}')).toBe(false);
    expect(isReplyPacket(null)).toBe(false);
  });

  it('reads the id of an undecodable JSON reply from its first or last bytes only', () => {
    expect(replyIdOf(Buffer.from(`{"response":"${'x'.repeat(5000)}","id":"abc-1"}`))).toBe('abc-1');
    expect(replyIdOf(Buffer.from(`{ "id" : "abc-2", "response":"${'x'.repeat(5000)}"}`))).toBe('abc-2');
    expect(replyIdOf(Buffer.from(`{"response":{"id":"inner"},"x":"${'y'.repeat(5000)}"}`))).toBeUndefined();
    expect(replyIdOf(Buffer.from('{"response":"\\"id\\":\\"fake\\"}"}'))).toBeUndefined();
    expect(replyIdOf(Buffer.from([0xff, 0xfe]))).toBeUndefined();
  });

  it('hands a custom deserializer parsed JSON, or the raw bytes for anything else', () => {
    const codec = new MessageCodec(100, 8);
    const raw = (text: string | Buffer) => decodeReply(codec, Buffer.isBuffer(text) ? text : Buffer.from(text), true, 100);
    expect(raw('{"id":"a","response":1}')).toEqual({ ok: true, value: { id: 'a', response: 1 } });
    expect(raw('"a json string"')).toEqual({ ok: true, value: 'a json string' });
    expect(raw('a:b:text')).toEqual({ ok: true, value: Buffer.from('a:b:text') });
    expect(raw(Buffer.from([0x61, 0x3a, 0xff]))).toEqual({ ok: true, value: Buffer.from([0x61, 0x3a, 0xff]) });
    expect(raw('x'.repeat(101))).toEqual({ ok: false, problem: 'payload of 101 bytes exceeds maxPayloadBytes (100)' });
    expect(raw(Buffer.alloc(101, 0xff)).ok).toBe(false);
    expect(raw('{"constructor":1}')).toEqual({ ok: false, problem: 'forbidden key "constructor" (prototype pollution)' });
    // Without a custom deserializer a reply is a message like any other.
    expect(decodeReply(codec, Buffer.from('a:b:text'), false, 100)).toEqual({ ok: true, value: 'a:b:text' });
    expect(decodeReply(codec, Buffer.from([0xff]), false, 100)).toEqual({ ok: false, problem: 'payload is not valid UTF-8' });
  });
});
