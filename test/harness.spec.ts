import { existsSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { closeClient, connectClient, NO_RETRY_OPTIONS } from './harness/clients.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { freePort } from './harness/ports.js';
import { delay, startRedis, stopAllRedis, waitFor, type RedisServerHandle } from './harness/redis.js';

/** How long "nothing happens" is observed for the silent-death assertions. */
const SILENCE_MS = 500;

/** Clients created by a test; closed in afterEach whatever happened. */
const clients: Redis[] = [];
const sockets: Socket[] = [];

/** A connected no-retry client, closed by afterEach. */
async function client(url: string, options: RedisOptions = {}): Promise<Redis> {
  const c = await connectClient(url, options);
  clients.push(c);
  return c;
}

/** Records whether a promise has settled, without ever letting it reject unhandled. */
function track<T>(promise: Promise<T>): { settled: () => boolean; result: Promise<PromiseSettledResult<T>> } {
  let done = false;
  const result = promise.then(
    (value): PromiseSettledResult<T> => ((done = true), { status: 'fulfilled', value }),
    (reason: unknown): PromiseSettledResult<T> => ((done = true), { status: 'rejected', reason }),
  );
  return { settled: () => done, result };
}

/** Raw TCP connection; resolves with how it ended: an error code, 'close' (FIN, no data) or 'data'. */
function rawConnectOutcome(port: number, payload?: string): Promise<{ connected: boolean; outcome: string; data: string }> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    sockets.push(socket);
    let connected = false;
    let data = '';
    let outcome: string | undefined;
    socket.on('connect', () => {
      connected = true;
      if (payload !== undefined) socket.write(payload);
    });
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      outcome ??= err.code ?? err.message;
    });
    socket.on('close', () => resolve({ connected, outcome: outcome ?? 'close', data }));
  });
}

async function clientNames(server: RedisServerHandle): Promise<string[]> {
  const list = String(await server.command('CLIENT', 'LIST'));
  return [...list.matchAll(/ name=(\S*)/g)].map((m) => m[1] ?? '').filter((n) => n !== '');
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => closeClient(c)));
  for (const s of sockets.splice(0)) s.destroy();
});

afterAll(async () => {
  await stopAllRedis();
});

describe('waitFor', () => {
  it('returns the first truthy value', async () => {
    let n = 0;
    await expect(waitFor(() => (++n >= 3 ? `done after ${n}` : 0), { intervalMs: 1 })).resolves.toBe('done after 3');
  });

  it('throws a clear error with the last value and the last error at the deadline', async () => {
    await expect(waitFor(() => 0, { timeoutMs: 100, message: 'never true' })).rejects.toThrow(
      /never true: timed out after 100 ms .*last value: 0/,
    );
    await expect(
      waitFor(
        () => {
          throw new Error('probe exploded');
        },
        { timeoutMs: 100, message: 'always throws' },
      ),
    ).rejects.toThrow(/always throws: timed out.*last error: Error: probe exploded/s);
  });

  it('abandons a probe that hangs past the deadline', async () => {
    await expect(waitFor(() => new Promise<boolean>(() => {}), { timeoutMs: 100 })).rejects.toThrow(/still pending/);
  });
});

describe('freePort', () => {
  it('returns a port that can be bound on 127.0.0.1', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const outcome = await rawConnectOutcome(port);
    expect(outcome).toEqual({ connected: false, outcome: 'ECONNREFUSED', data: '' });
  });
});

describe('startRedis', () => {
  let server: RedisServerHandle | undefined;

  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('starts a redis-server that answers PING on 127.0.0.1 in its own temp dir', async () => {
    server = await startRedis();
    expect(server.host).toBe('127.0.0.1');
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    expect(server.isRunning()).toBe(true);
    expect(server.pid).toEqual(expect.any(Number));
    expect(existsSync(server.dir)).toBe(true);
    await expect(server.command('PING')).resolves.toBe('PONG');
    const c = await client(server.url);
    await expect(c.ping()).resolves.toBe('PONG');
    // the options we pass really are in effect
    await expect(server.command('CONFIG', 'GET', 'save')).resolves.toEqual(['save', '']);
    await expect(server.command('CONFIG', 'GET', 'bind')).resolves.toEqual(['bind', '127.0.0.1']);
    await expect(server.command('CONFIG', 'GET', 'dir')).resolves.toEqual(['dir', expect.stringContaining('redis-harness-')]);
  });

  it('kill() ends the process; start() brings it back on the same port', async () => {
    server = await startRedis();
    const { port, dir } = server;
    const firstPid = server.pid;
    await server.command('SET', 'survives', 'no');

    await server.kill();
    expect(server.isRunning()).toBe(false);
    expect(server.pid).toBeUndefined();
    expect((await rawConnectOutcome(port)).outcome).toBe('ECONNREFUSED');
    await expect(server.command('PING')).rejects.toThrow();

    await server.start();
    expect(server.isRunning()).toBe(true);
    expect(server.port).toBe(port);
    expect(server.dir).toBe(dir);
    expect(server.pid).toEqual(expect.any(Number));
    expect(server.pid).not.toBe(firstPid);
    await expect(server.command('PING')).resolves.toBe('PONG');
    await expect(server.command('GET', 'survives')).resolves.toBeNull(); // no persistence
  });

  it('kill() with another signal waits for the exit too', async () => {
    server = await startRedis();
    await server.kill('SIGTERM');
    expect(server.isRunning()).toBe(false);
    await server.start();
    await expect(server.command('PING')).resolves.toBe('PONG');
  });

  it('kill(SIGSTOP) freezes the server without ending it; SIGCONT resumes it; stop() still works', async () => {
    server = await startRedis();
    const pid = server.pid;
    await server.kill('SIGSTOP');
    expect(server.isRunning()).toBe(true);
    const ping = track(server.command('PING'));
    await delay(SILENCE_MS);
    expect(ping.settled()).toBe(false);
    await server.kill('SIGCONT');
    await expect(ping.result).resolves.toEqual({ status: 'fulfilled', value: 'PONG' });
    expect(server.pid).toBe(pid);
    await server.kill('SIGSTOP');
    const dir = server.dir;
    await server.stop();
    expect(server.isRunning()).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });

  it('start() retries while the port is busy, and is not fooled by another redis-server answering there', async () => {
    server = await startRedis();
    const { port } = server;
    await server.kill();
    // another redis-server takes the port for a while: it answers PING, but it is not ours
    const squatter = await startRedis({ port });
    const started = track(server.start());
    await waitFor(async () => /Address already in use|Could not create server TCP/.test(await readLog(server!)), {
      message: 'our redis-server should have tried and failed to bind',
    });
    expect(started.settled()).toBe(false);
    // A retry child of ours may be alive at any instant; what matters is who answers on the port.
    expect(String(await squatter.command('INFO', 'server'))).toContain(`process_id:${squatter.pid}`);
    await squatter.stop();
    expect((await started.result).status).toBe('fulfilled');
    expect(server.port).toBe(port);
    const info = String(await server.command('INFO', 'server'));
    expect(info).toContain(`process_id:${server.pid}`);
  });

  it('stop() removes the dir, is idempotent and safe after kill(); start() after stop() rejects', async () => {
    server = await startRedis();
    const { dir } = server;
    await server.kill();
    await server.stop();
    expect(existsSync(dir)).toBe(false);
    await server.stop();
    await expect(server.start()).rejects.toThrow(/after stop/);

    const second = await startRedis();
    const secondDir = second.dir;
    await second.stop();
    expect(second.isRunning()).toBe(false);
    expect(existsSync(secondDir)).toBe(false);
    expect((await rawConnectOutcome(second.port)).outcome).toBe('ECONNREFUSED');
  });

  it('passes config entries (multi-word values as one argv item) and the password', async () => {
    server = await startRedis({
      password: 's3cret with spaces',
      config: { 'client-output-buffer-limit': 'pubsub 1mb 1mb 0', 'maxmemory-policy': 'noeviction', hz: 50 },
    });
    await expect(server.command('CONFIG', 'GET', 'client-output-buffer-limit')).resolves.toEqual([
      'client-output-buffer-limit',
      expect.stringContaining('pubsub 1048576 1048576 0'),
    ]);
    await expect(server.command('CONFIG', 'GET', 'hz')).resolves.toEqual(['hz', '50']);
    const anonymous = await client(server.url, { protocol: 2, enableReadyCheck: false });
    await expect(anonymous.ping()).rejects.toThrow(/NOAUTH/);
    const authed = await client(server.url, { password: 's3cret with spaces' });
    await expect(authed.ping()).resolves.toBe('PONG');
  });

  it('reports the tail of redis.log when redis-server cannot start', async () => {
    await expect(startRedis({ config: { 'no-such-option': 'x' } })).rejects.toThrow(
      /exited before it was ready[\s\S]*no-such-option/,
    );
  });
});

async function readLog(server: RedisServerHandle): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return readFile(`${server.dir}/redis.log`, 'utf8').catch(() => '');
}

describe('FaultProxy', () => {
  let server: RedisServerHandle;
  let proxy: FaultProxy;

  beforeAll(async () => {
    server = await startRedis();
  });

  afterAll(async () => {
    await server.stop();
  });

  beforeEach(async () => {
    proxy = await FaultProxy.start({ host: server.host, port: server.port });
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => closeClient(c)));
    await proxy.close();
    await server.command('FLUSHALL');
  });

  it('forwards commands both ways and counts live connections', async () => {
    expect(proxy.url).toBe(`redis://127.0.0.1:${proxy.port}`);
    expect(proxy.port).not.toBe(server.port);
    const c = await client(proxy.url);
    expect(proxy.connectionCount).toBe(1);
    await expect(c.set('greeting', 'hello')).resolves.toBe('OK');
    await expect(server.command('GET', 'greeting')).resolves.toBe('hello');
    await server.command('SET', 'direct', 'x'.repeat(200_000));
    await expect(c.get('direct')).resolves.toHaveLength(200_000);
    await closeClient(c);
    await waitFor(() => proxy.connectionCount === 0, { message: 'proxy should drop the closed connection' });
  });

  it('blackhole(): old connections go silent in both directions but stay open; new ones work', async () => {
    const victim = await client(proxy.url, { connectionName: 'victim' });
    const subscriber = await client(proxy.url, { connectionName: 'sub' });
    const messages: string[] = [];
    subscriber.on('message', (_channel: string, message: string) => messages.push(message));
    await subscriber.subscribe('bh');
    await expect(server.command('PUBLISH', 'bh', 'before')).resolves.toBe(1);
    await waitFor(() => messages.includes('before'), { message: 'message before the blackhole' });
    let closes = 0;
    victim.on('close', () => closes++);
    subscriber.on('close', () => closes++);

    proxy.blackhole();

    const ping = track(victim.ping());
    const set = track(victim.set('lost', 'yes'));
    // the server still sees the subscriber (zombie upstream) but the message goes nowhere
    await expect(server.command('PUBLISH', 'bh', 'after')).resolves.toBe(1);
    await delay(SILENCE_MS);
    expect(ping.settled()).toBe(false);
    expect(set.settled()).toBe(false);
    expect(messages).toEqual(['before']);
    expect(closes).toBe(0);
    expect(victim.status).toBe('ready');
    expect(subscriber.status).toBe('ready');
    expect(proxy.connectionCount).toBe(2);
    await expect(server.command('GET', 'lost')).resolves.toBeNull();
    expect(await clientNames(server)).toEqual(expect.arrayContaining(['victim', 'sub']));

    const fresh = await client(proxy.url);
    await expect(fresh.ping()).resolves.toBe('PONG');
    await expect(fresh.set('works', '1')).resolves.toBe('OK');
    await expect(server.command('GET', 'works')).resolves.toBe('1');
    expect(proxy.connectionCount).toBe(3);

    await closeClient(victim);
    expect((await ping.result).status).toBe('rejected');
  });

  it('partition(): bytes are held both ways and delivered in order on heal; match picks one connection by name', async () => {
    const victim = await client(proxy.url, { connectionName: 'part-victim' });
    const bystander = await client(proxy.url, { connectionName: 'part-bystander' });
    const messages: string[] = [];
    victim.on('message', (_channel: string, message: string) => messages.push(message));
    await victim.subscribe('part');

    const partition = proxy.partition({ match: 'part-victim' });
    const ping = track(victim.ping());
    for (const n of [1, 2, 3]) await expect(server.command('PUBLISH', 'part', `m${n}`)).resolves.toBe(1);
    await expect(bystander.ping()).resolves.toBe('PONG');
    await delay(SILENCE_MS);
    expect(ping.settled()).toBe(false);
    expect(messages).toEqual([]);

    partition.heal();
    expect((await ping.result).status).toBe('fulfilled');
    expect(messages).toEqual(['m1', 'm2', 'm3']);
  });

  it("partition({ direction: 'to-client' }): commands reach Redis, their answers are held", async () => {
    const muted = await client(proxy.url, { connectionName: 'muted' });
    const partition = proxy.partition({ match: 'muted', direction: 'to-client' });
    const set = track(muted.set('muted-key', 'arrived'));
    await waitFor(async () => (await server.command('GET', 'muted-key')) === 'arrived', { message: 'the command reached Redis' });
    expect(set.settled()).toBe(false);
    partition.heal();
    await expect(set.result).resolves.toEqual({ status: 'fulfilled', value: 'OK' });
  });

  it('blackholeAll(true): new connections are accepted but never answered, until switched off', async () => {
    const before = await client(proxy.url);
    proxy.blackholeAll(true);
    const late = new Redis(proxy.url, { ...NO_RETRY_OPTIONS });
    late.on('error', () => {});
    clients.push(late);
    const connecting = track(late.connect());
    const ping = track(before.ping());
    await waitFor(() => proxy.connectionCount === 2, { message: 'the late connection should be accepted' });
    await delay(SILENCE_MS);
    expect(connecting.settled()).toBe(false);
    expect(ping.settled()).toBe(false);
    expect(late.status).toBe('connect'); // TCP up, handshake unanswered

    proxy.blackholeAll(false);
    const after = await client(proxy.url);
    await expect(after.ping()).resolves.toBe('PONG');
    expect(ping.settled()).toBe(false); // blackholed connections stay dead
  });

  it('reset(): clients see the connection reset, and the server sees its side go away', async () => {
    const c = await client(proxy.url, { connectionName: 'victim-reset' });
    expect(await clientNames(server)).toContain('victim-reset');
    const errors: string[] = [];
    c.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    const raw = rawConnectOutcome(proxy.port);
    await waitFor(() => proxy.connectionCount === 2, { message: 'raw connection accepted' });

    proxy.reset();

    await closed;
    await waitFor(() => c.status === 'end', { message: 'client should give up (no retry strategy)' });
    expect(errors).toContain('ECONNRESET');
    expect(await raw).toMatchObject({ outcome: 'ECONNRESET', data: '' });
    expect(proxy.connectionCount).toBe(0);
    await waitFor(async () => !(await clientNames(server)).includes('victim-reset'), {
      message: 'server should drop the upstream connection',
    });
    const again = await client(proxy.url);
    await expect(again.ping()).resolves.toBe('PONG');
  });

  it('reroute(): the client socket survives, its server-side state does not', async () => {
    const second = await startRedis();
    try {
      const sub = await client(proxy.url);
      const messages: string[] = [];
      sub.on('message', (_channel: string, message: string) => messages.push(message));
      let closes = 0;
      sub.on('close', () => closes++);
      await sub.subscribe('ch');
      await expect(server.command('PUBLISH', 'ch', 'one')).resolves.toBe(1);
      await waitFor(() => messages.includes('one'), { message: 'message before reroute' });

      await proxy.reroute({ host: second.host, port: second.port });
      expect(proxy.currentTarget).toEqual({ host: second.host, port: second.port });

      await expect(sub.ping()).resolves.toBe('PONG');
      expect(closes).toBe(0);
      expect(sub.status).toBe('ready');
      expect(proxy.connectionCount).toBe(1);
      await expect(second.command('PUBLISH', 'ch', 'x')).resolves.toBe(0); // subscription gone
      await waitFor(async () => (await server.command('PUBLISH', 'ch', 'y')) === 0, {
        message: 'old upstream should be closed',
      });
      expect(messages).toEqual(['one']);

      // new connections go to the new target
      const fresh = await client(proxy.url);
      await fresh.set('where', 'second');
      await expect(second.command('GET', 'where')).resolves.toBe('second');
      await expect(server.command('GET', 'where')).resolves.toBeNull();

      // bytes sent while the new upstream connects are buffered, not lost
      const moving = proxy.reroute({ host: server.host, port: server.port });
      const pings = Promise.all([fresh.ping(), sub.ping(), fresh.set('back', 'first')]);
      await moving;
      await expect(pings).resolves.toEqual(['PONG', 'PONG', 'OK']);
      await expect(server.command('GET', 'back')).resolves.toBe('first');
    } finally {
      await second.stop();
    }
  });

  it('reroute() to a closed port rejects and resets the moved clients', async () => {
    const c = await client(proxy.url);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    const deadPort = await freePort();
    await expect(proxy.reroute({ host: '127.0.0.1', port: deadPort })).rejects.toThrow(/could not reach/);
    await closed;
    expect(proxy.connectionCount).toBe(0);
  });

  it('refuse(true): new connections are reset at once; refuse(false) lets them through again', async () => {
    const existing = await client(proxy.url);
    proxy.refuse(true);
    await expect(client(proxy.url)).rejects.toThrow();
    // (the RST may even beat the client's own connect completion, so `connected` is not asserted)
    expect(await rawConnectOutcome(proxy.port)).toMatchObject({ outcome: 'ECONNRESET', data: '' });
    expect(proxy.connectionCount).toBe(1);
    await expect(existing.ping()).resolves.toBe('PONG'); // only new connections are refused

    proxy.refuse(false);
    const c = await client(proxy.url);
    await expect(c.ping()).resolves.toBe('PONG');
  });

  it('close(): stops listening and drops every connection', async () => {
    const c = await client(proxy.url);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    await proxy.close();
    await closed;
    expect(proxy.connectionCount).toBe(0);
    expect((await rawConnectOutcome(proxy.port)).outcome).toBe('ECONNREFUSED');
    await proxy.close(); // idempotent
  });

  it('passes a server-side close through as a clean end', async () => {
    const c = await client(proxy.url, { connectionName: 'to-be-killed' });
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    await expect(server.command('CLIENT', 'KILL', 'SKIPME', 'yes', 'TYPE', 'normal')).resolves.toBeGreaterThanOrEqual(1);
    await closed;
    await waitFor(() => proxy.connectionCount === 0, { message: 'proxy should drop the connection' });
  });
});
