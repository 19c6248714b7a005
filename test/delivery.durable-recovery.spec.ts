import { EventEmitter } from 'node:events';
import { DurableChannels, type DurableLoss } from '../lib/delivery/durable-recovery.js';
import type { DurableReader, StreamEntry } from '../lib/delivery/durable-stream.js';
import type { PubSubLink, RedisPubSubEvents } from '../lib/pubsub-link.js';
import { waitFor } from './harness/wait.js';

/** A stream kept in memory: entries with dense offsets, a meta hash, trimming by hand. */
class FakeStream {
  epoch = 'e1';
  offset = 0;
  entries: StreamEntry[] = [];
  exists = true;

  append(count: number): void {
    for (let i = 0; i < count; i++) {
      this.offset++;
      this.entries.push({ id: `${this.offset}-0`, position: { epoch: this.epoch, offset: this.offset }, payload: Buffer.from(String(this.offset)) });
    }
  }

  trimTo(keep: number): void {
    this.entries = keep === 0 ? [] : this.entries.slice(-keep);
  }

  lose(): void {
    Object.assign(this, { exists: false, offset: 0, entries: [], epoch: 'e2' });
  }

  reader(): DurableReader {
    return {
      meta: async () => (this.exists ? { epoch: this.epoch, offset: this.offset } : undefined),
      range: async (_channel: string, afterId: string | undefined, count: number) => {
        const after = afterId ? Number(afterId.split('-')[0]) : 0;
        return this.entries.filter((e) => Number(e.id.split('-')[0]) > after).slice(0, count);
      },
      last: async () => this.entries.at(-1),
    } as unknown as DurableReader;
  }
}

function setUp(stream: FakeStream) {
  const events = new EventEmitter<RedisPubSubEvents>();
  const recovered: Array<{ replayed: number; reason: string }> = [];
  events.on('recovered', (info) => recovered.push(info));
  const link = { events, logger: { log: () => undefined, warn: () => undefined } } as unknown as PubSubLink;
  const replayed: number[] = [];
  const losses: DurableLoss[] = [];
  const durable = new DurableChannels(link, stream.reader(), async () => undefined, (_c, payload) => replayed.push(Number(payload.toString())), (loss) => losses.push(loss));
  durable.add('ch');
  return { durable, replayed, losses, recovered };
}

const live = (stream: FakeStream, offset: number) => ({ epoch: stream.epoch, offset, id: `${offset}-0` });

describe('durable recovery state machine (fake stream)', () => {
  it('anchors at the end of the stream, delivers the next offsets live, recovers a gap in order', async () => {
    const stream = new FakeStream();
    stream.append(5);
    const { durable, replayed, losses, recovered } = setUp(stream);
    await durable.anchorAll();
    stream.append(1);
    expect(durable.admitLive('ch', live(stream, 6))).toBe('deliver');
    stream.append(4); // 7..10, the live copies of 7..9 were lost
    expect(durable.admitLive('ch', live(stream, 10))).toBe('skip');
    await waitFor(() => recovered.length === 1);
    expect(replayed).toEqual([7, 8, 9, 10]);
    expect(recovered).toEqual([expect.objectContaining({ replayed: 4, reason: 'gap' })]);
    expect(losses).toEqual([]);
    // A late live copy of a replayed event is overlap, not a duplicate; an event delivered live twice is.
    expect(durable.admitLive('ch', live(stream, 9))).toBe('skip');
    stream.append(1);
    expect(durable.admitLive('ch', live(stream, 11))).toBe('deliver');
    expect(durable.admitLive('ch', live(stream, 11))).toBe('duplicate');
  });

  it('live events at or below the anchor are still new until one above it was handled', async () => {
    const stream = new FakeStream();
    stream.append(3);
    const { durable } = setUp(stream);
    await durable.anchorAll();
    expect(durable.admitLive('ch', live(stream, 3))).toBe('deliver');
    stream.append(1);
    expect(durable.admitLive('ch', live(stream, 4))).toBe('deliver');
    expect(durable.admitLive('ch', live(stream, 3))).toBe('duplicate');
  });

  it('reports a range trimmed inside the stream and one trimmed off its end, each with the exact count', async () => {
    const stream = new FakeStream();
    const { durable, replayed, losses, recovered } = setUp(stream);
    await durable.anchorAll();
    stream.append(1);
    expect(durable.admitLive('ch', live(stream, 1))).toBe('deliver');
    stream.append(20);
    stream.trimTo(5); // 17..21 left
    durable.recoverAll();
    await waitFor(() => recovered.length === 1);
    expect(replayed).toEqual([17, 18, 19, 20, 21]);
    expect(losses).toEqual([{ channel: 'ch', missed: 15, reason: 'trimmed' }]);
    stream.append(3);
    stream.trimTo(0); // everything trimmed (by age): only the meta says how far it went
    durable.recoverAll();
    await waitFor(() => recovered.length === 2);
    expect(losses.at(-1)).toEqual({ channel: 'ch', missed: 3, reason: 'trimmed' });
  });

  it('a lost stream: waits for the new epoch, then replays the new stream from its start', async () => {
    const stream = new FakeStream();
    stream.append(2);
    const { durable, replayed, recovered } = setUp(stream);
    await durable.anchorAll();
    stream.lose();
    durable.recoverAll();
    await waitFor(() => recovered.length === 1);
    expect(replayed).toEqual([]);
    stream.exists = true;
    stream.append(3);
    // The first live event of the new stream is offset 1: nothing before it, delivered at once.
    expect(durable.admitLive('ch', live(stream, 1))).toBe('deliver');
    expect(durable.firstAfterEpochChange('ch', 'publisher-a')).toBe(true);
    expect(durable.firstAfterEpochChange('ch', 'publisher-a')).toBe(false);
    // A later offset jump in the new epoch is recovered from the new stream.
    expect(durable.admitLive('ch', live(stream, 3))).toBe('skip');
    await waitFor(() => recovered.length === 2);
    expect(replayed).toEqual([2, 3]);
  });

  it('a stream replaced while we were away (another epoch): replays the new stream from its start', async () => {
    const stream = new FakeStream();
    stream.append(4);
    const { durable, replayed, recovered } = setUp(stream);
    await durable.anchorAll();
    stream.lose();
    stream.exists = true;
    stream.append(3);
    expect(durable.admitLive('ch', live(stream, 3))).toBe('skip');
    await waitFor(() => recovered.length === 1);
    expect(replayed).toEqual([1, 2, 3]);
    expect(recovered[0]).toMatchObject({ reason: 'new-epoch', replayed: 3 });
  });
});
