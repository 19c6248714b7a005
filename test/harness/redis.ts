import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { Redis } from 'ioredis';
import { closeClient } from './clients.js';
import { freePort } from './ports.js';
import { Reaper } from './reaper.js';
import { delay } from './wait.js';

export { waitFor, delay, type WaitForOptions } from './wait.js';
export { freePort } from './ports.js';

export interface RedisServerHandle {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** redis://127.0.0.1:port (without the password) */
  readonly url: string;
  /** Private temp dir (mkdtemp under os.tmpdir()) holding redis.log; removed by stop(). */
  readonly dir: string;
  /** TLS port (only with the `tls` option), next to the plain `port` the harness itself uses. */
  readonly tlsPort: number | undefined;
  /** rediss://127.0.0.1:tlsPort (only with the `tls` option) */
  readonly tlsUrl: string | undefined;
  /** Pid of the running redis-server, undefined while it is not running. */
  readonly pid: number | undefined;
  isRunning(): boolean;
  /**
   * Sends `signal` (default SIGKILL) and resolves once the process has exited.
   * Exception: SIGSTOP / SIGTSTP / SIGCONT do not end the process; for those it resolves as soon as
   * the signal is sent (SIGSTOP freezes the server: connections stay open, nothing is answered).
   * Resolves at once if the server is not running.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * (Re)starts redis-server on the SAME port and dir; resolves once it answers PING (and INFO
   * reports the pid of the process we spawned). Retries while the port is briefly busy. No-op
   * (beyond the readiness check) if it is already running. Rejects after stop().
   */
  start(): Promise<void>;
  /** SIGTERM (SIGKILL after 5 s), wait for exit, remove the temp dir. Idempotent, safe after kill(). */
  stop(): Promise<void>;
  /**
   * One admin command through a short-lived ioredis connection (RESP2, no retries), closed afterwards.
   * `command('SHUTDOWN', 'NOSAVE')` resolves to 'OK' even though the server drops the connection.
   */
  command(...args: (string | number)[]): Promise<unknown>;
}

export interface StartRedisOptions {
  /** Fixed port; default: a free port (re-picked if it gets taken before redis-server binds it). */
  port?: number;
  /**
   * Extra redis-server options, passed as `--key value` (two argv items). A value with several
   * words goes in as ONE string, e.g. `{ 'client-output-buffer-limit': 'pubsub 1mb 1mb 0' }`;
   * Redis 7 splits multi-argument options itself.
   */
  config?: Record<string, string | number>;
  /** Sets --requirepass; used by the readiness probe and command(). */
  password?: string;
  /** Readiness deadline per start() in ms (default 10 000). */
  startTimeoutMs?: number;
  /**
   * Also listen for TLS on `tlsPort` with these files (see tls.ts); clients need no certificate.
   * The plain port stays open for the harness' readiness probe and command().
   */
  tls?: { certFile: string; keyFile: string; caCertFile: string };
}

const HOST = '127.0.0.1' as const;
const DEFAULT_START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const NON_TERMINATING = new Set<NodeJS.Signals>(['SIGSTOP', 'SIGTSTP', 'SIGCONT']);

/**
 * Every handle not yet stopped. Leftovers are cleaned up two ways: the process.on('exit') hook
 * below (plain Node processes) and a per-handle watchdog (see reaper.ts) which also works inside
 * Jest, whose sandbox `process` never emits 'exit', and when the test process is SIGKILLed.
 */
const live = new Set<RedisServer>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const server of live) server.destroySync();
  });
}

/** Stops every server started by this module instance that is still alive (for afterAll safety nets). */
export async function stopAllRedis(): Promise<void> {
  await Promise.all([...live].map((server) => server.stop()));
}

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServerHandle> {
  installExitHook();
  const fixedPort = options.port !== undefined;
  const port = options.port ?? (await freePort());
  const tlsPort = options.tls ? await freePort() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'redis-harness-'));
  const server = new RedisServer(port, tlsPort, dir, options);
  live.add(server);
  try {
    await server.startInternal(!fixedPort);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

class RedisServer implements RedisServerHandle {
  readonly host = HOST;
  /** own (enumerable) properties, so `{ ...handle }` and `FaultProxy.start(handle)` see them */
  port: number;
  url: string;
  tlsPort: number | undefined;
  tlsUrl: string | undefined;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private alive = false;
  private stopping: Promise<void> | undefined;
  private spawnError: Error | undefined;
  private readonly password: string | undefined;
  private readonly config: Record<string, string | number>;
  private readonly tls: StartRedisOptions['tls'];
  private readonly startTimeoutMs: number;
  private readonly reaper: Reaper;

  constructor(
    port: number,
    tlsPort: number | undefined,
    readonly dir: string,
    options: StartRedisOptions,
  ) {
    this.port = port;
    this.url = `redis://${HOST}:${port}`;
    this.tlsPort = tlsPort;
    this.tlsUrl = tlsPort === undefined ? undefined : `rediss://${HOST}:${tlsPort}`;
    this.tls = options.tls;
    this.password = options.password;
    this.config = options.config ?? {};
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.reaper = new Reaper(dir);
  }

  get pid(): number | undefined {
    return this.alive ? this.child?.pid : undefined;
  }

  private get logFile(): string {
    return join(this.dir, 'redis.log');
  }

  private get stdioFile(): string {
    return join(this.dir, 'redis.stdout.log');
  }

  /** Tails of redis.log and of redis-server's stdout/stderr, from the given offsets. */
  private async logs(offsets: { log: number; stdio: number } = { log: 0, stdio: 0 }): Promise<string> {
    const log = await readFrom(this.logFile, offsets.log);
    const stdio = await readFrom(this.stdioFile, offsets.stdio);
    return `${this.logFile}:\n${tail(log)}\n${this.stdioFile}:\n${tail(stdio)}`;
  }

  isRunning(): boolean {
    return this.alive;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!this.alive || child === undefined) return;
    child.kill(signal);
    if (NON_TERMINATING.has(signal)) return;
    await this.waitExit(child);
  }

  /** Waits for the exit of `child`, keeping the event loop alive meanwhile. */
  private async waitExit(child: ChildProcess): Promise<void> {
    child.ref();
    try {
      await this.exited;
    } finally {
      child.unref();
    }
  }

  start(): Promise<void> {
    return this.startInternal(false);
  }

  /** @param mayChangePort only for the very first start of a server without a fixed port */
  async startInternal(mayChangePort: boolean): Promise<void> {
    if (this.stopping) throw new Error(`redis-server on port ${this.port}: start() after stop()`);
    const deadline = Date.now() + this.startTimeoutMs;
    if (this.alive) {
      await this.waitReady(deadline);
      return;
    }
    for (let attempt = 1; ; attempt++) {
      const offsets = { log: await fileSize(this.logFile), stdio: await fileSize(this.stdioFile) };
      this.spawnChild();
      const outcome = await this.waitReady(deadline);
      if (outcome === 'ready') return;
      // The process exited before answering.
      const log = await readFrom(this.logFile, offsets.log);
      const portBusy = /Address already in use|Could not create server TCP listening socket/i.test(log);
      if (portBusy && Date.now() < deadline && !this.stopping) {
        if (mayChangePort) {
          this.port = await freePort();
          this.url = `redis://${HOST}:${this.port}`;
          if (this.tlsPort !== undefined) {
            this.tlsPort = await freePort();
            this.tlsUrl = `rediss://${HOST}:${this.tlsPort}`;
          }
        }
        await delay(Math.min(50 * attempt, 250));
        continue;
      }
      throw new Error(
        `redis-server on port ${this.port} exited before it was ready (attempt ${attempt}). ` +
          `Tail of ${await this.logs(offsets)}`,
      );
    }
  }

  private spawnChild(): void {
    const args = [
      '--port', String(this.port),
      '--bind', HOST,
      '--dir', this.dir,
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--protected-mode', 'no',
      '--logfile', this.logFile,
    ];
    if (this.password !== undefined) args.push('--requirepass', this.password);
    if (this.tls && this.tlsPort !== undefined) {
      args.push(
        '--tls-port', String(this.tlsPort),
        '--tls-cert-file', this.tls.certFile,
        '--tls-key-file', this.tls.keyFile,
        '--tls-ca-cert-file', this.tls.caCertFile,
        '--tls-auth-clients', 'no',
      );
    }
    for (const [key, value] of Object.entries(this.config)) {
      args.push(`--${key.replace(/^--/, '')}`, String(value));
    }
    this.spawnError = undefined;
    // stdout/stderr go to a file (early errors such as a bad option are printed there, before the
    // logfile is open); the parent keeps no pipe, so nothing holds Jest's event loop.
    const out = openSync(this.stdioFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn('redis-server', args, { stdio: ['ignore', out, out], cwd: this.dir });
    } finally {
      closeSync(out);
    }
    this.child = child;
    this.alive = true;
    // The child never keeps the event loop alive by itself (a test that forgets stop() must not
    // hang Jest; the reaper cleans up); kill()/stop() ref it while they wait for the exit.
    child.unref();
    if (child.pid !== undefined) this.reaper.spawned(child.pid);
    this.exited = new Promise<void>((resolve) => {
      const done = (): void => {
        if (this.child === child) {
          this.alive = false;
          this.reaper.exited();
        }
        resolve();
      };
      child.once('exit', done);
      // spawn failure (ENOENT...): 'error' without 'exit'
      child.once('error', (err) => {
        if (child.pid === undefined) {
          this.spawnError = err;
          done();
        }
      });
    });
  }

  /** Polls PING + INFO until our process answers; 'exited' if it died first. Throws at the deadline. */
  private async waitReady(deadline: number): Promise<'ready' | 'exited'> {
    const child = this.child;
    let last = 'no probe yet';
    for (;;) {
      if (child !== undefined && child.pid === undefined) await this.waitExit(child); // spawn failed
      if (!this.alive || child === undefined || child.pid === undefined) {
        if (this.spawnError) {
          throw new Error(`cannot spawn redis-server (is it on PATH?): ${this.spawnError.message}`);
        }
        return 'exited';
      }
      const probe = await probeRedis(this.port, this.password, child.pid, 1_000);
      if (probe.ok) return 'ready';
      last = probe.detail;
      if (Date.now() >= deadline) {
        child.kill('SIGKILL');
        await this.waitExit(child);
        throw new Error(
          `redis-server on port ${this.port} did not answer PING within ${this.startTimeoutMs} ms ` +
            `(last probe: ${last}). Tail of ${await this.logs()}`,
        );
      }
      await delay(25);
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const child = this.child;
      if (this.alive && child !== undefined) {
        child.kill('SIGTERM');
        child.kill('SIGCONT'); // in case a test froze it with SIGSTOP
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          this.waitExit(child).then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), STOP_GRACE_MS);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut && this.alive) {
          child.kill('SIGKILL');
          await this.waitExit(child);
        }
      }
      await rm(this.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
      this.reaper.dismiss();
      live.delete(this);
    })();
    return this.stopping;
  }

  /** Synchronous last-resort cleanup for process.on('exit'). */
  destroySync(): void {
    const pid = this.child?.pid;
    if (this.alive && pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }

  async command(...args: (string | number)[]): Promise<unknown> {
    const [name, ...rest] = args;
    if (name === undefined) throw new Error('command(): no command given');
    const client = new Redis({
      host: HOST,
      port: this.port,
      password: this.password,
      protocol: 2,
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      enableReadyCheck: false,
      disableClientInfo: true,
      connectTimeout: 5_000,
    });
    client.on('error', () => {
      /* reported through the rejected promise */
    });
    try {
      await client.connect();
      return await client.call(String(name), rest);
    } catch (err) {
      if (String(name).toUpperCase() === 'SHUTDOWN' && isConnectionClosed(err)) return 'OK';
      throw err;
    } finally {
      await closeClient(client);
    }
  }
}

function isConnectionClosed(err: unknown): boolean {
  return err instanceof Error && /Connection is closed|ECONNRESET/i.test(err.message);
}

interface ProbeResult {
  ok: boolean;
  detail: string;
}

/**
 * Raw-socket readiness probe (no client library, so no reconnect timers): sends [AUTH], PING and
 * INFO server, and is ready when PING answers +PONG and INFO names the pid we spawned (so another
 * process that happens to own the port is never mistaken for ours).
 */
function probeRedis(port: number, password: string | undefined, pid: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    const commands: string[][] = [];
    if (password !== undefined) commands.push(['AUTH', password]);
    commands.push(['PING'], ['INFO', 'server']);
    let buffer = Buffer.alloc(0);
    let settled = false;
    const socket = netConnect({ host: HOST, port });
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => finish({ ok: false, detail: `no answer within ${timeoutMs} ms` }));
    socket.on('error', (err) => finish({ ok: false, detail: err.message }));
    socket.on('close', () => finish({ ok: false, detail: 'connection closed before the replies' }));
    socket.on('connect', () => socket.write(commands.map(encodeCommand).join('')));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const replies = parseReplies(buffer, commands.length);
      if (replies === undefined) return;
      const errorReply = replies.find((r) => r.error);
      if (errorReply) return finish({ ok: false, detail: `error reply: ${errorReply.text}` });
      const pong = replies[replies.length - 2];
      const info = replies[replies.length - 1];
      if (pong?.text !== 'PONG') return finish({ ok: false, detail: `PING answered ${pong?.text}` });
      const match = /process_id:(\d+)/.exec(info?.text ?? '');
      if (match?.[1] !== String(pid)) {
        return finish({ ok: false, detail: `port ${port} is answered by pid ${match?.[1]}, not ours (${pid})` });
      }
      finish({ ok: true, detail: 'PONG' });
    });
  });
}

function encodeCommand(args: string[]): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
}

/** Parses `count` simple/error/bulk/integer replies; undefined until all of them are complete. */
function parseReplies(buffer: Buffer, count: number): { error: boolean; text: string }[] | undefined {
  const replies: { error: boolean; text: string }[] = [];
  let pos = 0;
  while (replies.length < count) {
    const eol = buffer.indexOf('\r\n', pos);
    if (eol < 0) return undefined;
    const type = String.fromCharCode(buffer[pos] ?? 0);
    const line = buffer.toString('utf8', pos + 1, eol);
    if (type === '$') {
      const len = Number(line);
      if (len < 0) {
        replies.push({ error: false, text: '' });
        pos = eol + 2;
        continue;
      }
      if (buffer.length < eol + 2 + len + 2) return undefined;
      replies.push({ error: false, text: buffer.toString('utf8', eol + 2, eol + 2 + len) });
      pos = eol + 2 + len + 2;
    } else {
      replies.push({ error: type === '-', text: line });
      pos = eol + 2;
    }
  }
  return replies;
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function readFrom(path: string, offset: number): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
    const size = (await handle.stat()).size;
    const length = Math.max(size - offset, 0);
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, offset);
    return buf.toString('utf8');
  } catch (err) {
    return `(could not read log: ${(err as Error).message})`;
  } finally {
    await handle?.close();
  }
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n') || '(log is empty)';
}
