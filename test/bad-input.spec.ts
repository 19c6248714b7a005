import type { Redis } from 'ioredis';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, waitFor, type RedisServerHandle } from './harness/redis.js';
import { startTestApp, type StartedTestApp } from './support/test-app.js';

const deep = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const deepObject = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

describe('bad input on a subscribed channel', () => {
  let redis: RedisServerHandle;
  let app: StartedTestApp;
  let publisher: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    app = await startTestApp({ url: redis.url, maxPayloadBytes: 1024, maxDepth: 16 });
    publisher = await connectClient(redis.url);
  });

  afterAll(async () => {
    await closeClient(publisher);
    await app?.close();
    await redis?.stop();
  });

  beforeEach(() => {
    app.inbox.items.length = 0;
  });

  const cases: Array<[string, string | Buffer, RegExp]> = [
    ['bytes that are not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /not valid UTF-8/],
    ['a payload over maxPayloadBytes', JSON.stringify({ data: 'x'.repeat(2000) }), /exceeds maxPayloadBytes \(1024\)/],
    ['absurdly deep array nesting', deep(500), /nested deeper than maxDepth \(16\)/],
    ['deep object nesting', deepObject(40), /nested deeper than maxDepth \(16\)/],
    ['a pattern that is neither a string, a number nor an object', JSON.stringify({ pattern: true, data: 1 }), /"pattern" must be a string, a number or an object, got boolean/],
    ['an id that is not a string', JSON.stringify({ pattern: 'inbound', data: 1, id: 7 }), /"id" must be a non-empty string, got number/],
    ['metadata that is not an object', JSON.stringify({ data: 1, metadata: 'x' }), /"metadata" must be an object, got string/],
    ['a __proto__ key', '{"data":{"__proto__":{"polluted":true}}}', /forbidden key "__proto__"/],
    ['a constructor key', '{"data":{"constructor":{"prototype":{"polluted":true}}}}', /forbidden key "constructor"/],
  ];

  it.each(cases)('rejects %s: one log line naming the channel and problem, counted, next message handled', async (_name, payload, problem) => {
    const invalidBefore = app.server.getStats().messages.invalid;
    const errorsBefore = app.logger.errors('Invalid message on channel "inbound"').length;

    await publisher.publish('inbound', payload);
    await publisher.publish('inbound', JSON.stringify({ pattern: 'inbound', data: 'next' }));

    await app.inbox.waitFor((items) => items.some((i) => i.handler === 'inbound' && i.data === 'next'));
    expect(app.inbox.of('inbound').map((i) => i.data)).toEqual(['next']);
    expect(app.server.getStats().messages.invalid).toBe(invalidBefore + 1);
    const lines = app.logger.errors('Invalid message on channel "inbound"').slice(errorsBefore);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(problem);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('accepts nesting up to maxDepth', async () => {
    await publisher.publish('inbound', JSON.stringify({ data: JSON.parse(deepObject(14)) }));
    await app.inbox.waitFor((items) => items.some((i) => i.handler === 'inbound'));
  });
});

describe('maxDepth raised far above the default', () => {
  let redis: RedisServerHandle;
  let app: StartedTestApp | undefined;
  let publisher: Redis | undefined;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    if (publisher) await closeClient(publisher);
    await app?.close();
    await redis?.stop();
  });

  it('deep JSON is delivered or rejected, never a stack overflow crashing the process', async () => {
    app = await startTestApp({ url: redis.url, maxPayloadBytes: 4 * 1024 * 1024, maxDepth: 500_000 });
    publisher = await connectClient(redis.url);
    // 200k levels: far past where a recursive walk overflowed (RangeError thrown in ioredis' data handler).
    await publisher.publish('inbound', deep(200_000));
    await publisher.publish('inbound', deep(500_001));
    await publisher.publish('inbound', JSON.stringify({ pattern: 'inbound', data: 'next' }));
    // Not inbox.waitFor(): its failure message would JSON.stringify the deep array (recursive in V8).
    await waitFor(() => app!.inbox.items.some((i) => i.data === 'next'), { message: 'the message after the deep ones never arrived' });
    const received = app.inbox.of('inbound').map((i) => i.data);
    expect(received.length).toBe(2);
    let depth = 0;
    for (let level: unknown = received[0]; Array.isArray(level); level = level[0]) depth++;
    expect(depth).toBe(200_000);
    expect(app.logger.errors('Invalid message on channel "inbound"')).toEqual([
      'Invalid message on channel "inbound": JSON nested deeper than maxDepth (500000)',
    ]);
  });
});
