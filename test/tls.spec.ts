import { Logger } from '@nestjs/common';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer, RedisPubSubStatus, type RedisPubSubOptions } from '../lib/index.js';
import { closeClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { makeCa, makeServerCertificate, type ServerCertificate, type TestCa } from './harness/tls.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { recordEvents } from './support/fault-rig.js';
import { startTestApp } from './support/test-app.js';
import { listen } from './support/transport-utils.js';

const PASSWORD = 'tls-s3cret-pw';
/** Fast rounds; a timeout no stall of a busy 2-core machine reaches, so any verdict is a real failure. */
const HEARTBEAT = { intervalMs: 100, timeoutMs: 5_000 } as const;

describe('TLS (rediss://) against a real redis-server with TLS', () => {
  let certDir: string;
  let ca: TestCa;
  let good: ServerCertificate;
  /** Signed by another CA than the one clients trust. */
  let rogue: ServerCertificate;
  /** Signed by the trusted CA, but for another host name than 127.0.0.1. */
  let misnamed: ServerCertificate;
  const logger = new CaptureLogger();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  const tlsOptions = (redis: RedisServerHandle, name: string, trusted = ca): RedisPubSubOptions => ({
    name,
    url: `rediss://:${PASSWORD}@127.0.0.1:${redis.tlsPort}`,
    redis: { tls: { ca: trusted.pem } },
    heartbeat: HEARTBEAT,
  });

  beforeAll(() => {
    Logger.overrideLogger(logger);
    process.on('unhandledRejection', onUnhandled);
    certDir = mkdtempSync(join(tmpdir(), 'tls-spec-'));
    ca = makeCa(certDir, 'trusted');
    good = makeServerCertificate(certDir, 'good', ca);
    rogue = makeServerCertificate(certDir, 'rogue', makeCa(certDir, 'rogue'));
    misnamed = makeServerCertificate(certDir, 'misnamed', ca, ['DNS:elsewhere.example']);
  });

  afterAll(() => {
    process.off('unhandledRejection', onUnhandled);
    rmSync(certDir, { recursive: true, force: true });
    expect(unhandled).toEqual([]);
    expect(JSON.stringify(logger.lines)).not.toContain(PASSWORD);
  });

  describe('with a certificate the clients trust', () => {
    let redis: RedisServerHandle;

    beforeAll(async () => {
      redis = await startRedis({ tls: good, password: PASSWORD });
    });

    afterAll(async () => {
      await redis?.stop();
    });

    it('carries events, requests, heartbeats and the path probe over TLS', async () => {
      const app = await startTestApp(tlsOptions(redis, 'tls-server'));
      const client = new RedisPubSubClient({ ...tlsOptions(redis, 'tls-client'), requestTimeoutMs: 10_000 });
      const events: string[] = [];
      recordEvents(app.server, events);
      recordEvents(client, events);
      try {
        await client.connect();
        // Every connection of both instances goes to the TLS port.
        const list = String(await redis.command('CLIENT', 'LIST'));
        const ours = list.split('\n').filter((line) => /name=tls-(server|client):/.test(line));
        expect(ours).toHaveLength(4);
        for (const line of ours) expect(line).toContain(`laddr=127.0.0.1:${redis.tlsPort} `);

        await firstValueFrom(client.emit('inbound', { over: 'tls' }));
        await app.inbox.waitFor((items) => items.some((i) => i.handler === 'inbound'), 'event over TLS handled');
        expect(app.inbox.of('inbound').map((i) => i.data)).toEqual([{ over: 'tls' }]);
        await expect(firstValueFrom(client.send('math.sum', [20, 22]))).resolves.toBe(42);

        // Heartbeats answered on all four connections, and probe rounds keep passing.
        await waitFor(
          () =>
            [app.server.getStats(), client.getStats()].every(
              (s) => s.connections.subscriber.heartbeatRttMs !== null && s.connections.publisher.heartbeatRttMs !== null,
            ),
          { message: 'heartbeat round trips on every connection' },
        );
        const publishes = async () => Number(/cmdstat_publish:calls=(\d+)/.exec(String(await redis.command('INFO', 'commandstats')))?.[1] ?? 0);
        const before = await publishes();
        // Two instances probe once per round each: ten more PUBLISHes are five probe rounds.
        await waitFor(async () => (await publishes()) >= before + 10, { message: 'probe rounds over TLS' });
        expect(events.filter((e) => e === 'probe-failed' || e.startsWith('heartbeat-timeout'))).toEqual([]);
        expect(app.server.getStats().state).toBe(RedisPubSubStatus.CONNECTED);
        expect(client.getStats().state).toBe(RedisPubSubStatus.CONNECTED);
      } finally {
        await client.close();
        await app.close();
      }
      expect(JSON.stringify(app.logger.lines)).not.toContain(PASSWORD);
    });

    it('reconnects over TLS after a Redis restart: every event Redis delivered is handled once, in order', async () => {
      const app = await startTestApp(tlsOptions(redis, 'tls-restart'));
      const events: string[] = [];
      recordEvents(app.server, events);
      const publisher = new Redis(`rediss://:${PASSWORD}@127.0.0.1:${redis.tlsPort}`, {
        tls: { ca: ca.pem },
        retryStrategy: () => 50,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
      });
      publisher.on('error', () => undefined);
      const delivered: number[] = [];
      let seq = 0;
      let running = true;
      // A steady stream of sequence-numbered events through the fault; Redis' PUBLISH reply says
      // whether a subscriber got each one.
      const stream = (async () => {
        while (running) {
          const n = ++seq;
          const receivers = await publisher.publish('inbound', JSON.stringify({ data: { seq: n } })).catch(() => 0);
          if (receivers > 0) delivered.push(n);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const handled = () => app.inbox.of('inbound').map((i) => (i.data as { seq: number }).seq);
      try {
        await waitFor(() => handled().length >= 20, { message: 'events flowing before the restart' });
        // Redis may have counted a receiver for an event still in its output buffer when it is killed:
        // those few (after the last one handled so far, up to the kill) have no delivery guarantee.
        const handledBeforeKill = Math.max(...handled());
        const killedAtSeq = seq;
        await redis.kill('SIGKILL');
        await redis.start();
        await waitFor(() => events.includes('resubscribed') && app.server.getStats().state === RedisPubSubStatus.CONNECTED, {
          message: `back after the restart; events: ${events.join(', ')}`,
        });
        const resumedAt = delivered.length;
        await waitFor(() => delivered.length >= resumedAt + 20, { message: 'events delivered after the restart' });
        running = false;
        await stream;
        const last = delivered[delivered.length - 1]!;
        await waitFor(() => handled().includes(last), { message: 'last delivered event handled' });

        const got = handled();
        expect(got.length).toBe(new Set(got).size); // no duplicates
        expect(got).toEqual([...got].sort((a, b) => a - b)); // in order
        // Nothing Redis delivered was lost, except what the SIGKILL itself took.
        expect(delivered.filter((n) => (n <= handledBeforeKill || n > killedAtSeq) && !got.includes(n))).toEqual([]);
        expect(events).toContain('reconnected:subscriber');
        expect(app.server.getStats().connections.subscriber.reconnects).toBeGreaterThanOrEqual(1);
      } finally {
        running = false;
        await stream;
        await closeClient(publisher);
        await app.close();
      }
    });
  });

  describe.each([
    ['a server certificate from a CA the client does not trust', () => rogue, /certificate/i],
    ['a server certificate for another host name', () => misnamed, /Hostname\/IP does not match certificate's altnames/],
  ])('%s', (_what, certificate, reason) => {
    let redis: RedisServerHandle;

    beforeAll(async () => {
      // A Nest app started above installed its own logger as Nest's static one: take it back.
      Logger.overrideLogger(logger);
      redis = await startRedis({ tls: certificate(), password: PASSWORD });
    });

    afterAll(async () => {
      await redis?.stop();
    });

    it('is a clear, redacted error, retried without a crash, and the transport connects once the certificate is fixed', async () => {
      const server = new RedisPubSubServer(tlsOptions(redis, 'tls-refused'));
      const seen: unknown[] = [];
      server.addHandler('tls.fixed', async (data: unknown) => void seen.push(data), true);
      const errors: string[] = [];
      server.on('error', (error) => errors.push(error.message));
      let listened = false;
      const listening = listen(server).then(() => (listened = true));
      listening.catch(() => undefined); // awaited below; close() in finally settles it if the test fails first
      try {
        await waitFor(() => server.getStats().connections.subscriber.attempt >= 2, { message: 'retried after the TLS failure' });
        expect(listened).toBe(false);
        expect(server.getStats().state).toBe(RedisPubSubStatus.CONNECTING);
        expect(errors.some((e) => reason.test(e))).toBe(true);
        // Logged with its cause, as a warning: a retried failure, not a crash.
        const warned = logger.lines.filter((line) => line.level === 'warn' && line.context === 'RedisPubSub:tls-refused');
        expect(warned.some((line) => /attempt \d+ failed/.test(line.message) && reason.test(line.message))).toBe(true);
        expect(server.getStats().connections.subscriber.lastError).toMatch(reason);
        expect(JSON.stringify(server.getStats())).not.toContain(PASSWORD);
        expect(errors.join('\n')).not.toContain(PASSWORD);

        // Fixed on the server side: Redis 7 reloads its TLS certificate on CONFIG SET.
        await redis.command('CONFIG', 'SET', 'tls-cert-file', good.certFile, 'tls-key-file', good.keyFile);
        await listening;
        const publisher = new Redis(`rediss://:${PASSWORD}@127.0.0.1:${redis.tlsPort}`, { tls: { ca: ca.pem }, maxRetriesPerRequest: 0 });
        try {
          await expect(publisher.publish('tls.fixed', JSON.stringify({ data: 'after the fix' }))).resolves.toBe(1);
          await waitFor(() => seen.length === 1, { message: 'event handled after the fix' });
          expect(seen).toEqual(['after the fix']);
        } finally {
          await closeClient(publisher);
        }
      } finally {
        await server.close();
        await listening.catch(() => undefined);
      }
    });
  });
});
