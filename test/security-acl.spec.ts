import { Logger } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer, RedisPubSubStatus } from '../lib/index.js';
import { closeClient, connectClient } from './harness/clients.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { waitFor } from './harness/wait.js';
import { CaptureLogger } from './support/capture-logger.js';
import { recordEvents } from './support/fault-rig.js';
import { listen } from './support/transport-utils.js';

/**
 * The README's Security section, executed: its `ACL SETUSER` lines, verbatim, are what this
 * test gives Redis, so the documented example is known to work.
 */
function readmeAclLines(): string[][] {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Security'));
  const lines = section
    .slice(0, section.indexOf('\n## ', 1) > 0 ? section.indexOf('\n## ', 1) : undefined)
    .split('\n')
    .filter((line) => line.startsWith('ACL SETUSER '));
  return lines.map((line) => line.trim().split(/\s+/));
}

/** Fast rounds; a timeout no stall of a busy 2-core machine reaches, so any verdict is a real failure. */
const HEARTBEAT = { intervalMs: 100, timeoutMs: 5_000 } as const;

const passwordOf = (line: string[]) => line.find((word) => word.startsWith('>'))!.slice(1);

describe('Security: Redis ACLs on channel patterns (the README example, against a real redis-server)', () => {
  let redis: RedisServerHandle;
  const logger = new CaptureLogger();
  let users: Record<string, string>;

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    redis = await startRedis();
    const lines = readmeAclLines();
    expect(lines.map((line) => line[2])).toEqual(['orders-server', 'orders-client']);
    for (const line of lines) await redis.command(...line);
    users = Object.fromEntries(lines.map((line) => [line[2]!, passwordOf(line)]));
  });

  afterAll(async () => {
    await redis?.stop();
  });

  const urlFor = (user: string) => `redis://${user}:${users[user]}@127.0.0.1:${redis.port}`;

  it('a server and a client under the restricted users carry events, requests, heartbeats and probes', async () => {
    const server = new RedisPubSubServer({ name: 'acl-server', url: urlFor('orders-server'), heartbeat: HEARTBEAT });
    const created: unknown[] = [];
    server.addHandler('orders.created', async (data: unknown) => void created.push(data), true);
    server.addHandler('orders.total', async (data: number[]) => data.reduce((a, b) => a + b, 0), false);
    const client = new RedisPubSubClient({ name: 'acl-client', url: urlFor('orders-client'), heartbeat: HEARTBEAT, requestTimeoutMs: 10_000 });
    const events: string[] = [];
    const errors: string[] = [];
    recordEvents(server, events);
    recordEvents(client, events);
    server.on('error', (error) => errors.push(error.message));
    client.on('error', (error) => errors.push(error.message));
    try {
      await listen(server);
      await client.connect();
      await firstValueFrom(client.emit('orders.created', { id: 7 }));
      await waitFor(() => created.length === 1, { message: 'event handled' });
      expect(created).toEqual([{ id: 7 }]);
      await expect(firstValueFrom(client.send('orders.total', [1, 2, 3]))).resolves.toBe(6);

      await waitFor(
        () =>
          [server.getStats(), client.getStats()].every(
            (s) => s.connections.subscriber.heartbeatRttMs !== null && s.connections.publisher.heartbeatRttMs !== null,
          ),
        { message: 'heartbeats answered on every connection' },
      );
      const publishes = async () => Number(/cmdstat_publish:calls=(\d+)/.exec(String(await redis.command('INFO', 'commandstats')))?.[1] ?? 0);
      const before = await publishes();
      await waitFor(async () => (await publishes()) >= before + 10, { message: 'probe rounds' });
      expect(events.filter((e) => e === 'probe-failed' || e.startsWith('heartbeat-timeout') || e.startsWith('reconnecting'))).toEqual([]);
      expect(errors).toEqual([]);
      expect(server.getStats().state).toBe(RedisPubSubStatus.CONNECTED);
      expect(client.getStats().state).toBe(RedisPubSubStatus.CONNECTED);
      // Redis refused nothing, not even a command ioredis sends on its own (ready check, CLIENT SETNAME).
      expect(await redis.command('ACL', 'LOG')).toEqual([]);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('a user without the channel permission cannot subscribe to the request channel, nor to reply channels', async () => {
    await redis.command('ACL', 'SETUSER', 'reports', 'on', '>reports-pw', 'resetchannels', '&reports.*', '-@all', '+@pubsub', '+ping');
    const snooper = await connectClient(`redis://reports:reports-pw@127.0.0.1:${redis.port}`, { enableReadyCheck: false });
    try {
      await expect(snooper.subscribe('orders.total')).rejects.toThrow(/NOPERM/);
      await expect(snooper.psubscribe('orders.*')).rejects.toThrow(/NOPERM/);
      await expect(snooper.psubscribe('__nestjs-redis-pubsub:reply:*')).rejects.toThrow(/NOPERM/);
      await expect(snooper.publish('orders.total', '{}')).rejects.toThrow(/NOPERM/);
      await expect(snooper.subscribe('reports.daily')).resolves.toBe(1);
    } finally {
      await closeClient(snooper);
    }
  });
});
