import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LocalRedis {
  url: string;
  port: number;
  /** Stops redis-server (SIGTERM, then SIGKILL after 5 s) and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A wrapper shell owns redis-server. It runs in its own process group, so the terminal's Ctrl-C
 * reaches only the app, which closes its connections first and then stops Redis. It also reads
 * the app's pipe: when the app is gone, however it ended (even SIGKILL), the pipe closes and the
 * shell stops redis-server and removes its temp dir, so nothing is ever left behind.
 */
const SUPERVISOR = `
exec 3<&0
redis-server "$@" </dev/null 3<&- &
pid=$!
{ read -r _ <&3; kill -TERM "$pid" 2>/dev/null; } &
watcher=$!
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
case "$SAMPLE_REDIS_DIR" in */nestjs-redis-pubsub-sample-*) rm -rf -- "$SAMPLE_REDIS_DIR" ;; esac
exit "$status"
`;

const HOST = '127.0.0.1';

/** Starts redis-server from PATH on a free 127.0.0.1 port, in a private temp dir, without persistence. */
export async function startLocalRedis(): Promise<LocalRedis> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'nestjs-redis-pubsub-sample-'));
    const child = spawn(
      '/bin/sh',
      ['-c', SUPERVISOR, 'redis-supervisor',
        '--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no',
        '--daemonize', 'no', '--logfile', join(dir, 'redis.log')],
      { detached: true, stdio: ['pipe', 'ignore', 'inherit'], env: { ...process.env, SAMPLE_REDIS_DIR: dir } },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.once('error', () => undefined);
    try {
      await waitForPing(port, dir, exited);
      return handle(child, exited, port, dir);
    } catch (error) {
      lastError = error;
      await terminate(child, exited);
      rmSync(dir, { recursive: true, force: true });
      // The port may have been taken between freePort() and redis-server binding it: try another.
      if (!/Address already in use/i.test(String(error))) break;
    }
  }
  throw lastError;
}

function handle(child: ChildProcess, exited: Promise<number | null>, port: number, dir: string): LocalRedis {
  let stopping: Promise<void> | undefined;
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  // Last resort on a plain process.exit(): the pipe closes with the process, the shell stops Redis.
  process.once('exit', removeDir);
  return {
    url: `redis://${HOST}:${port}`,
    port,
    stop: () =>
      (stopping ??= terminate(child, exited).then(() => {
        removeDir();
        process.off('exit', removeDir);
      })),
  };
}

async function terminate(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.stdin?.end(); // EOF: the shell sends SIGTERM to redis-server and waits for it
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5_000)))]);
  clearTimeout(timer);
  if (!done && child.pid !== undefined) {
    try {
      process.kill(-child.pid, 'SIGKILL'); // the whole group: the shell and redis-server
    } catch {
      /* already gone */
    }
    await exited;
  }
}

/** Resolves once redis-server answers PING; rejects (with the tail of its log) if it exits first or after 10 s. */
async function waitForPing(port: number, dir: string, exited: Promise<number | null>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (gone) throw new Error(`redis-server exited before answering on port ${port}:\n${logTail(dir)}`);
    if (await ping(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis-server did not answer PING on port ${port} within 10 s:\n${logTail(dir)}`);
}

function logTail(dir: string): string {
  try {
    return readFileSync(join(dir, 'redis.log'), 'utf8').trimEnd().split('\n').slice(-10).join('\n');
  } catch {
    return '(no redis.log: is redis-server on PATH? run scripts/setup.sh)';
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    let reply = '';
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
    socket.on('error', () => finish(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: HOST, port: 0 }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

