/**
 * Where the time goes inside MessageCodec.parse() for the bench payloads, step by step
 * (ns per message, best of several rounds). Evidence for the profile section; lib/ is only called.
 */
import { isUtf8 } from 'node:buffer';
import { MessageCodec } from '../../lib/codec.js';
import { emitToParent, nowNs, serve } from '../support/ipc.js';
import { eventPool, type SizeName } from '../support/payloads.js';

let sink = 0;

function measure(label: string, buffers: Buffer[], fn: (b: Buffer) => unknown): { step: string; ns: number } {
  const iterations = Math.round(8e6 / buffers[0]!.length);
  let best = Infinity;
  for (let round = 0; round < 7; round++) {
    const t0 = nowNs();
    for (let i = 0; i < iterations; i++) {
      const r = fn(buffers[i % buffers.length]!);
      if (r === undefined) sink++;
    }
    best = Math.min(best, (nowNs() - t0) / iterations);
  }
  return { step: label, ns: Math.round(best) };
}

serve({
  run() {
    const out: Record<string, Array<{ step: string; ns: number }>> = {};
    for (const size of ['small', 'large'] as SizeName[]) {
      const buffers = eventPool(size).map((s) => Buffer.from(s));
      const codec = new MessageCodec(1024 * 1024, 64);
      out[size] = [
        measure('buffer.toString()', buffers, (b) => b.toString()),
        measure('JSON.parse(buffer.toString())  [what raw ioredis and ServerRedis do]', buffers, (b) => JSON.parse(b.toString())),
        measure('isUtf8(buffer)', buffers, (b) => isUtf8(b)),
        measure('MessageCodec.parse(): size, UTF-8 check, JSON.parse, one walk for depth and forbidden keys', buffers, (b) => codec.parse(b)),
        measure('MessageCodec.parse() + toPacket()', buffers, (b) => {
          const parsed = codec.parse(b);
          return parsed.ok ? codec.toPacket('bench.event', parsed.value) : parsed;
        }),
      ];
    }
    return { results: out, sink };
  },
  exit() {
    setImmediate(() => process.exit(0));
    return true;
  },
});

emitToParent('ready', { pid: process.pid });
