import type { Redis } from 'ioredis';
import { SubscriptionRegistry } from '../lib/subscription-registry.js';

/** Records (P)SUBSCRIBE calls and lets the test acknowledge or refuse each one, like Redis replying in order. */
class FakeSubscriber {
  readonly calls: Array<{ kind: 'channel' | 'pattern'; names: string[]; settle: (error?: Error) => void }> = [];

  subscribe(...names: string[]): Promise<number> {
    return this.record('channel', names);
  }

  psubscribe(...names: string[]): Promise<number> {
    return this.record('pattern', names);
  }

  private record(kind: 'channel' | 'pattern', names: string[]): Promise<number> {
    return new Promise((resolve, reject) => {
      this.calls.push({ kind, names, settle: (error) => (error ? reject(error) : resolve(names.length)) });
    });
  }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('SubscriptionRegistry (unit)', () => {
  it('sends every batch before the first acknowledgement, and confirms a batch only once it is acknowledged', async () => {
    const registry = new SubscriptionRegistry();
    for (let i = 0; i < 1_200; i++) registry.add('channel', `c.${i}`);
    registry.add('pattern', 'p.*');
    const fake = new FakeSubscriber();
    const done = registry.subscribeMissing(fake as unknown as Redis, () => true);
    await flush();
    expect(fake.calls.map((c) => [c.kind, c.names.length])).toEqual([
      ['channel', 500],
      ['channel', 500],
      ['channel', 200],
      ['pattern', 1],
    ]);
    expect(registry.confirmedCount).toBe(0);
    fake.calls[0]!.settle();
    await flush();
    expect(registry.confirmedCount).toBe(500);
    for (const call of fake.calls.slice(1)) call.settle();
    await expect(done).resolves.toEqual({ confirmed: 1_201, failed: [] });
    expect(registry.complete).toBe(true);
  });

  it('retries a refused batch name by name, confirms the others and reports the refused one', async () => {
    const registry = new SubscriptionRegistry();
    for (let i = 0; i < 1_000; i++) registry.add('channel', i === 700 ? 'secret' : `c.${i}`);
    const fake = new FakeSubscriber();
    const done = registry.subscribeMissing(fake as unknown as Redis, () => true);
    await flush();
    fake.calls[1]!.settle(new Error('NOPERM this user has no permissions to access the channel'));
    fake.calls[0]!.settle();
    await flush();
    const singles = fake.calls.slice(2);
    expect(singles.map((c) => c.names.length)).toEqual(Array(500).fill(1));
    for (const call of singles) call.settle(call.names[0] === 'secret' ? new Error('NOPERM no access to "secret"') : undefined);
    await expect(done).resolves.toEqual({
      confirmed: 999,
      failed: [{ kind: 'channel', name: 'secret', error: 'NOPERM no access to "secret"' }],
    });
    expect(registry.missing()).toEqual(['channel:secret']);
  });

  it('drops acknowledgements that arrive after the socket was replaced', async () => {
    const registry = new SubscriptionRegistry();
    for (let i = 0; i < 600; i++) registry.add('channel', `c.${i}`);
    const fake = new FakeSubscriber();
    let current = true;
    const done = registry.subscribeMissing(fake as unknown as Redis, () => current);
    await flush();
    fake.calls[0]!.settle();
    await flush();
    current = false;
    fake.calls[1]!.settle();
    await expect(done).resolves.toEqual({ confirmed: 500, failed: [] });
    expect(registry.confirmedCount).toBe(500);
  });
});
