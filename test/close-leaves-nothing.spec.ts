import { createHook } from 'node:async_hooks';
import { Logger } from '@nestjs/common';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer } from '../lib/index.js';
import { startRedis, stopAllRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';

/** Handles that keep a process alive: timers, immediates and sockets. */
const KEEPS_ALIVE = new Set(['Timeout', 'Immediate', 'TCPWRAP', 'TLSWRAP', 'PIPEWRAP']);

/**
 * Records every timer, immediate and socket created from now on that is still open: what a
 * transport leaves behind. (process.getActiveResourcesInfo() also counts the test harness' own
 * handles, which come and go on their own schedule.)
 */
function trackHandles(): { open(): Promise<string[]> } {
  const open = new Map<number, string>();
  let settling = false;
  const hook = createHook({
    init(id, type) {
      if (settling || !KEEPS_ALIVE.has(type)) return;
      const stack = new Error().stack ?? '';
      // The hook sees the whole process: Jest's reporter runs here too (--runInBand) and its status timer is not ours.
      if (stack.includes('node_modules/@jest/reporters/')) return;
      open.set(id, `${type} created ${stack.split('\n').slice(2, 9).join(' <- ')}`);
    },
    destroy(id) {
      open.delete(id);
    },
  }).enable();
  return {
    open: async () => {
      // Node reports destroyed handles in a batch after the current macrotask: two turns of the
      // loop let it, while anything still pending (a 100 ms timer) is still there.
      settling = true;
      for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
      hook.disable();
      return [...open.values()];
    },
  };
}

const outcome = (events: Promise<unknown>) =>
  events.then(
    () => 'sent',
    (error: Error) => `failed: ${error.message}`,
  );

describe('after close() nothing is pending and nothing is logged as an error', () => {
  let redis: RedisServerHandle;
  const logger = new CaptureLogger();

  beforeAll(async () => {
    redis = await startRedis();
    Logger.overrideLogger(logger);
  });

  afterAll(async () => {
    await stopAllRedis();
  });

  beforeEach(() => {
    logger.lines.length = 0;
  });

  it('emit() racing close() on a client that is still connecting: the event fails at once, no timer outlives close()', async () => {
    const handles = trackHandles();
    const client = new RedisPubSubClient({ url: redis.url, name: 'emit-race' });
    const emitted = outcome(firstValueFrom(client.emit('race.event', { n: 1 }), { defaultValue: undefined }));
    await client.close();
    expect(await handles.open()).toEqual([]);
    expect(await emitted).toBe('failed: event "race.event" not sent: the client was closed');
    expect(logger.lines.filter((line) => line.level === 'error')).toEqual([]);
  });

  it('emit() racing close() on a connected client: the event settles, nothing is left', async () => {
    const handles = trackHandles();
    const client = new RedisPubSubClient({ url: redis.url, name: 'emit-race-connected' });
    await client.connect();
    const emitted = outcome(firstValueFrom(client.emit('race.event', { n: 2 }), { defaultValue: undefined }));
    await client.close();
    expect(await handles.open()).toEqual([]);
    expect(await emitted).toMatch(/^(sent|failed: .+)$/);
    expect(logger.lines.filter((line) => line.level === 'error')).toEqual([]);
  });

  it('a server closed while it is still connecting: nothing left, no error logged', async () => {
    const handles = trackHandles();
    const server = new RedisPubSubServer({ url: redis.url, name: 'early-close-server' });
    server.addHandler('early.event', async () => undefined, true);
    const listened = new Promise<unknown>((resolve) => server.listen(resolve));
    await server.close();
    expect(await listened).toBeInstanceOf(Error); // listen() reports that it never connected...
    expect(await handles.open()).toEqual([]);
    expect(logger.lines.filter((line) => line.level === 'error')).toEqual([]); // ...without logging it as an error
  });

  it('close() during an outage, between two reconnect attempts: nothing left, the held event fails', async () => {
    const down = await startRedis();
    const handles = trackHandles();
    const client = new RedisPubSubClient({ url: down.url, name: 'outage-close', retry: { minDelayMs: 200, maxDelayMs: 200 } });
    await client.connect();
    await down.stop();
    await waitFor(() => Object.values(client.getStats().connections).every((connection) => connection.state === 'reconnecting'), {
      message: 'the client never noticed the outage',
    });
    const emitted = outcome(firstValueFrom(client.emit('outage.event', 1), { defaultValue: undefined }));
    await waitFor(() => client.getStats().pending?.events === 1, { message: 'the event was never queued' });
    const logged = logger.lines.length;
    await client.close();
    expect(await handles.open()).toEqual([]);
    expect(await emitted).toBe('failed: event "outage.event" not sent: the client was closed');
    expect(logger.lines.slice(logged).filter((line) => line.level === 'error')).toEqual([]);
  });
});
