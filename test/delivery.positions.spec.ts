import { Logger } from '@nestjs/common';
import { LossReport } from '../lib/delivery/loss-report.js';
import { PositionStamper, POSITION_KEY, readPosition, stampEnvelope } from '../lib/delivery/position.js';
import { PositionTracker } from '../lib/delivery/position-tracker.js';

describe('positions (pure logic)', () => {
  it('stamper: one publisher id per instance, a sequence per channel from 1', () => {
    const stamper = new PositionStamper();
    expect([stamper.next('a'), stamper.next('a'), stamper.next('b'), stamper.next('a')]).toEqual([
      { p: stamper.publisherId, s: 1 },
      { p: stamper.publisherId, s: 2 },
      { p: `${stamper.publisherId}.1`, s: 1 },
      { p: stamper.publisherId, s: 3 },
    ]);
    expect(new PositionStamper().publisherId).not.toBe(stamper.publisherId);
  });

  it("stamper: puts the position into a copy of the envelope's metadata, leaving other keys alone", () => {
    const metadata = { traceparent: '00-abc' };
    const envelope = { pattern: 'x', data: 1, metadata };
    expect(stampEnvelope(envelope, () => ({ p: 'pub', s: 1 }))).toBe(true);
    expect(envelope.metadata).toEqual({ traceparent: '00-abc', [POSITION_KEY]: { p: 'pub', s: 1 } });
    expect(metadata).toEqual({ traceparent: '00-abc' });
    let taken = 0;
    expect(stampEnvelope('not an envelope', () => ({ p: 'pub', s: ++taken }))).toBe(false);
    expect(taken).toBe(0);
  });

  it('tracker: next and first positions pass, a jump counts the missed ones, repeats and older ones are refused', () => {
    const tracker = new PositionTracker();
    expect(tracker.check('', 'ch', 'p1', 5)).toBe(0); // first seen: nothing before it can be judged
    expect(tracker.check('', 'ch', 'p1', 6)).toBe(0);
    expect(tracker.check('', 'ch', 'p1', 6)).toBe(-1);
    expect(tracker.check('', 'ch', 'p1', 4)).toBe(-1);
    expect(tracker.check('', 'ch', 'p1', 10)).toBe(3);
    expect(tracker.check('', 'ch', 'p2', 1)).toBe(0);
    expect(tracker.check('', 'other', 'p1', 1)).toBe(0);
    expect(tracker.check('orders.*', 'ch', 'p1', 10)).toBe(0); // the same channel through a pattern: its own position
  });

  it('tracker: a kept hole is filled by late arrivals in order, once each; after forgetHoles they are old again', () => {
    const tracker = new PositionTracker();
    expect(tracker.check('', 'c', 'p', 1, true)).toBe(0);
    expect(tracker.check('', 'c', 'p', 6, true)).toBe(4);
    const hole = tracker.opened!;
    expect(hole).toEqual({ next: 2, to: 5, filled: 0 });
    expect(tracker.check('', 'c', 'p', 7, true)).toBe(0);
    expect(tracker.opened).toBeUndefined();
    // 2 and 4 arrive late (3 was lost on the old socket too); a repeat of 4 is a duplicate.
    expect(tracker.check('', 'c', 'p', 2)).toBe(0);
    expect(tracker.check('', 'c', 'p', 4)).toBe(0);
    expect(tracker.check('', 'c', 'p', 4)).toBe(-1);
    expect(tracker.check('', 'c', 'p', 3)).toBe(-1);
    expect(hole.filled).toBe(2);
    tracker.forgetHoles();
    expect(tracker.check('', 'c', 'p', 5)).toBe(-1);
    // Without keepHole a jump is final.
    expect(tracker.check('', 'c', 'p', 10)).toBe(2);
    expect(tracker.opened).toBeUndefined();
    expect(tracker.check('', 'c', 'p', 9)).toBe(-1);
  });

  it('tracker: memory is bounded, the least recently used position is evicted first', () => {
    const tracker = new PositionTracker(3);
    tracker.check('', 'ch', 'a', 1);
    tracker.check('', 'ch', 'b', 1);
    tracker.check('', 'ch', 'c', 1);
    tracker.check('', 'ch', 'a', 2); // a is now the most recent
    tracker.check('', 'ch', 'd', 1); // evicts b
    expect(tracker.size).toBe(3);
    expect(tracker.check('', 'ch', 'b', 1)).toBe(0); // forgotten: a first again, not a repeat
    expect(tracker.check('', 'ch', 'a', 2)).toBe(-1); // remembered
  });

  it('reads positions and rejects malformed ones with a clear problem', () => {
    expect(readPosition(undefined)).toEqual({ ok: true, position: undefined });
    expect(readPosition({ traceId: 'x' })).toEqual({ ok: true, position: undefined });
    expect(readPosition({ [POSITION_KEY]: { p: 'a', s: 1 } })).toEqual({ ok: true, position: { p: 'a', s: 1 } });
    expect(readPosition({ [POSITION_KEY]: { p: 'a', s: 1, d: 'e1:3:1-0' } })).toEqual({ ok: true, position: { p: 'a', s: 1, d: 'e1:3:1-0' } });
    for (const bad of [null, 'x', { p: 'a' }, { p: '', s: 1 }, { p: 'a', s: 0 }, { p: 'a', s: 1.5 }, { p: 'a', s: 1, d: 'nope' }, { p: 'a', s: 1, d: 'e:0' }]) {
      const read = readPosition({ [POSITION_KEY]: bad });
      expect(read.ok).toBe(false);
      if (!read.ok) expect(read.problem).toContain(`metadata "${POSITION_KEY}" is malformed`);
    }
  });

  it('loss report: logs the first loss at once, then at most one line per 5 s summing up what it held back; keeps the last 10', () => {
    const lines: string[] = [];
    const logger = { warn: (message: string) => lines.push(message) } as unknown as Logger;
    const report = new LossReport(logger);
    const t0 = 1_000_000;
    report.add({ kind: 'gap', channel: 'a', publisher: 'p', missed: 2, at: t0 }, 'first');
    report.add({ kind: 'gap', channel: 'a', publisher: 'p', missed: 3, at: t0 + 100 }, 'second');
    report.add({ kind: 'gap', channel: 'a', publisher: 'p', missed: 4, at: t0 + 200 }, 'third');
    expect(lines).toEqual(['first']);
    report.add({ kind: 'gap', channel: 'a', publisher: 'p', missed: 1, at: t0 + 5_000 }, 'fourth');
    expect(lines).toEqual(['first', 'fourth (and 2 more loss(es), 7 event(s), in the previous 5 s)']);
    for (let i = 0; i < 20; i++) report.add({ kind: 'gap', channel: `c${i}`, missed: 1, at: t0 + 6_000 }, 'x');
    expect(report.recent.map((r) => r.channel)).toEqual(Array.from({ length: 10 }, (_, i) => `c${i + 10}`));
  });
});
