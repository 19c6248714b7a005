import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT, expectHandlesNewEvent, startFaultRig, waitForResubscribed, type FaultRig } from './support/fault-rig.js';

/** Busy-waits: the event loop is blocked for `ms`, as by a long synchronous handler. */
function blockEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    /* spin */
  }
}

async function clientId(rig: FaultRig, name: string): Promise<string> {
  const list = (await rig.redis.command('CLIENT', 'LIST')) as string;
  const line = list.split('\n').find((l) => l.includes(` name=${name} `));
  if (!line) throw new Error(`no connection named ${name} in CLIENT LIST:\n${list}`);
  return /id=(\d+)/.exec(line)![1];
}

/** Moves the rig's live sockets to a fresh redis-server and expects the probe to catch it. */
async function rerouteAndRecover(rig: FaultRig, marker: string): Promise<void> {
  const fresh = await startRedis();
  try {
    await rig.proxy.reroute({ host: fresh.host, port: fresh.port });
    await waitForResubscribed(rig);
    expect(rig.events).toContain('probe-failed');
    expect(rig.events).not.toContain('heartbeat-timeout:subscriber');
    const direct = await connectClient(fresh.url);
    try {
      await expectHandlesNewEvent(rig, marker, direct);
    } finally {
      await closeClient(direct);
    }
  } finally {
    await rig.close();
    await fresh.stop();
  }
}

describe('never deaf: recovery from faults against a real redis-server', () => {
  let rig: FaultRig;

  afterEach(async () => {
    await rig?.close();
  });

  it('blackhole: detects the silent death by heartbeat, reconnects and resubscribes', async () => {
    rig = await startFaultRig();
    const before = Date.now();
    rig.proxy.blackhole();
    await waitForResubscribed(rig);
    const stats = rig.app.server.getStats();
    expect(rig.events).toEqual(expect.arrayContaining(['heartbeat-timeout:subscriber', 'heartbeat-timeout:publisher', 'status:reconnecting']));
    expect(stats.connections.subscriber.reconnects).toBe(1);
    expect(stats.connections.subscriber.lastError).toMatch(/heartbeat timeout/);
    // Caught by the heartbeat, not by TCP: well within interval + timeout + slack.
    expect(Date.now() - before).toBeLessThan(10_000);
    await expectHandlesNewEvent(rig, 'after-blackhole');
  });

  it('reset: recovers from connections forcibly closed by the remote host', async () => {
    rig = await startFaultRig();
    rig.proxy.reset();
    await waitForResubscribed(rig);
    expect(rig.events).not.toContain('heartbeat-timeout:subscriber');
    await expectHandlesNewEvent(rig, 'after-reset');
  });

  it('CLIENT KILL TYPE pubsub: the subscriber comes back and is resubscribed', async () => {
    rig = await startFaultRig({ name: 'kill-pubsub' });
    await rig.redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitForResubscribed(rig);
    expect(rig.app.server.getStats().connections.publisher.reconnects).toBe(0);
    await expectHandlesNewEvent(rig, 'after-client-kill-pubsub');
  });

  it('CLIENT KILL of the publisher: it reconnects and replies flow again', async () => {
    rig = await startFaultRig({ name: 'kill-pub' });
    await rig.redis.command('CLIENT', 'KILL', 'ID', await clientId(rig, 'kill-pub:pub'));
    await waitFor(() => rig.app.server.getStats().connections.publisher.reconnects === 1 && rig.app.server.getStats().state === 'connected', {
      message: 'publisher reconnected',
    });
    // The probe and request replies use the publisher: a request answered proves it works.
    const requester = await connectClient(rig.redis.url);
    const replies = await connectClient(rig.redis.url);
    try {
      await replies.subscribe('math.sum.reply');
      const reply = new Promise<string>((resolve) => replies.on('message', (_c: string, m: string) => resolve(m)));
      await requester.publish('math.sum', JSON.stringify({ pattern: 'math.sum', data: [1, 2], id: 'r1' }));
      expect(JSON.parse(await reply)).toMatchObject({ id: 'r1', response: 3 });
    } finally {
      await closeClient(requester);
      await closeClient(replies);
    }
  });

  it('redis-server SIGKILLed and restarted on the same port: resubscribed once it is back', async () => {
    rig = await startFaultRig();
    await rig.redis.kill('SIGKILL');
    await waitFor(() => rig.app.server.getStats().state === 'reconnecting', { message: 'reconnecting' });
    await closeClient(rig.direct);
    await rig.redis.start();
    rig.direct = await connectClient(rig.redis.url);
    await waitForResubscribed(rig);
    await expectHandlesNewEvent(rig, 'after-restart');
  });

  it('redis-server down for longer than several backoff periods: keeps trying, then recovers', async () => {
    rig = await startFaultRig({ retry: { minDelayMs: 50, maxDelayMs: 200 } });
    await rig.redis.kill('SIGKILL');
    await closeClient(rig.direct);
    await waitFor(() => rig.events.filter((e) => e === 'reconnecting:subscriber').length >= 8, {
      message: 'at least 8 reconnect attempts while Redis is down',
    });
    expect(rig.app.server.getStats().state).toBe('reconnecting');
    await rig.redis.start();
    rig.direct = await connectClient(rig.redis.url);
    await waitForResubscribed(rig);
    await expectHandlesNewEvent(rig, 'after-long-outage');
  });

  it('slow consumer killed by client-output-buffer-limit pubsub: reconnects and resubscribes', async () => {
    rig = await startFaultRig({ name: 'slow-consumer' }, { viaProxy: false, redisConfig: { 'client-output-buffer-limit': 'pubsub 256kb 128kb 1' } });
    const { host, port } = rig.redis;
    // Flood from another process while this event loop is blocked, so the subscriber reads nothing.
    const flood = spawnSync('redis-benchmark', ['-h', host, '-p', String(port), '-c', '1', '-n', '20000', '-P', '100', '-q', 'PUBLISH', 'inbound', 'x'.repeat(1024)], {
      encoding: 'utf8',
    });
    expect(flood.status).toBe(0);
    await waitForResubscribed(rig);
    expect(readFileSync(join(rig.redis.dir, 'redis.log'), 'utf8')).toMatch(/scheduled to be closed ASAP for overcoming of output buffer limits/);
    expect(rig.app.server.getStats().connections.subscriber.reconnects).toBe(1);
    await expectHandlesNewEvent(rig, 'after-slow-consumer-kill');
  });

  it('reroute: the socket moved to a fresh redis-server (PING still works) is caught by the path probe', async () => {
    rig = await startFaultRig();
    await rerouteAndRecover(rig, 'after-reroute');
  });

  it('no false positives: a flood and a blocked event loop cause no reconnect', async () => {
    rig = await startFaultRig({}, { viaProxy: false });
    const flood = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ data: { i, pad: 'x'.repeat(200) } }));
    const pipeline = rig.direct.pipeline();
    for (const message of flood) pipeline.publish('inbound', message);
    await pipeline.exec();
    // Several heartbeat timeouts long, during which the PONGs and the probe wait in the socket.
    blockEventLoop(FAST_HEARTBEAT.timeoutMs * 4);
    await rig.app.inbox.waitFor((items) => items.length >= 20_000, 'flood handled', 30_000);
    // Let a few more heartbeat rounds and probes run to completion after the stall.
    const rounds = rig.app.server.getStats().connections.subscriber.lastLifeSignAt!;
    await waitFor(() => rig.app.server.getStats().connections.subscriber.lastLifeSignAt! > rounds + 3 * FAST_HEARTBEAT.intervalMs, {
      message: 'three more heartbeat rounds',
    });
    const stats = rig.app.server.getStats();
    expect(rig.events.filter((e) => !e.startsWith('status:'))).toEqual([]);
    expect(stats.connections.subscriber.reconnects).toBe(0);
    expect(stats.connections.publisher.reconnects).toBe(0);
    expect(stats.state).toBe('connected');
  });
});

describe('never deaf under RESP2 (a subscribed PING answers ["pong", token])', () => {
  let rig: FaultRig;

  afterEach(async () => {
    await rig?.close();
  });

  it('blackhole: detected and recovered', async () => {
    rig = await startFaultRig({ redis: { protocol: 2 } });
    rig.proxy.blackhole();
    await waitForResubscribed(rig);
    expect(rig.events).toContain('heartbeat-timeout:subscriber');
    await expectHandlesNewEvent(rig, 'resp2-after-blackhole');
  });

  it('reroute: caught by the path probe and recovered', async () => {
    rig = await startFaultRig({ redis: { protocol: 2 } });
    await rerouteAndRecover(rig, 'resp2-after-reroute');
  });

  it('idle heartbeats cause no reconnect', async () => {
    rig = await startFaultRig({ redis: { protocol: 2 } }, { viaProxy: false });
    const rounds = Date.now();
    await waitFor(() => (rig.app.server.getStats().connections.subscriber.heartbeatRttMs ?? -1) >= 0 && Date.now() - rounds > 5 * FAST_HEARTBEAT.intervalMs, {
      message: 'five heartbeat rounds',
    });
    expect(rig.events.filter((e) => !e.startsWith('status:'))).toEqual([]);
  });
});
