import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';

const OUTPUT_TAIL = 60;

/**
 * Parent side of a forked worker (see ipc.ts). Keeps the tail of its stdout/stderr for error
 * reports; every live worker is registered so the bench can SIGKILL them all on any exit path.
 */
export class Worker extends EventEmitter {
  static readonly live = new Set<Worker>();
  /** Called with every worker pid (run.ts records them for scripts/bench.sh's last-resort cleanup). */
  static onSpawn?: (pid: number | undefined) => void;
  readonly child: ChildProcess;
  readonly ready: Promise<any>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private readonly output: string[] = [];
  private exitInfo?: string;

  constructor(
    readonly label: string,
    script: string,
    config: unknown,
    execArgv: string[] = [],
  ) {
    super();
    const path = fileURLToPath(new URL(`../workers/${script}.js`, import.meta.url));
    this.child = fork(path, [JSON.stringify(config)], { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    Worker.live.add(this);
    Worker.onSpawn?.(this.child.pid);
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) this.output.push(line);
      if (this.output.length > OUTPUT_TAIL) this.output.splice(0, this.output.length - OUTPUT_TAIL);
      if (process.env.BENCH_VERBOSE) process.stderr.write(`[${label}] ${chunk.toString()}`);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    let onReady!: (v: any) => void;
    let onReadyFail!: (e: Error) => void;
    this.ready = new Promise((resolve, reject) => ((onReady = resolve), (onReadyFail = reject)));
    this.ready.catch(() => undefined);
    this.child.on('message', (message: any) => {
      if (message?.kind === 'res') {
        const waiter = this.pending.get(message.id);
        if (!waiter) return;
        this.pending.delete(message.id);
        if (message.error !== undefined) waiter.reject(new Error(`${label}: ${message.error}`));
        else waiter.resolve(message.result);
      } else if (message?.kind === 'evt') {
        if (message.type === 'ready') onReady(message.data);
        else if (message.type === 'fatal') onReadyFail(new Error(`${label} failed to start: ${message.data}`));
        this.emit(message.type, message.data);
      }
    });
    // An IPC write to a worker that is exiting (EPIPE) is reported through its 'exit', not as a crash of the bench.
    this.child.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        Worker.live.delete(this);
        this.exitInfo = `exited (code ${code}, signal ${signal})`;
        const error = new Error(`${label} ${this.exitInfo}; output tail:\n${this.tail()}`);
        onReadyFail(error);
        for (const waiter of this.pending.values()) waiter.reject(error);
        this.pending.clear();
        this.emit('exit', code, signal);
        resolve({ code, signal });
      });
    });
  }

  tail(): string {
    return this.output.join('\n') || '(no output)';
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async waitReady(timeoutMs = 30_000): Promise<any> {
    return withTimeout(this.ready, timeoutMs, () => `${this.label} not ready after ${timeoutMs} ms; output tail:\n${this.tail()}`);
  }

  request<T = any>(cmd: string, args?: unknown, timeoutMs = 120_000): Promise<T> {
    if (this.exitInfo) return Promise.reject(new Error(`${this.label} ${this.exitInfo}; output tail:\n${this.tail()}`));
    const id = ++this.nextId;
    const result = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ kind: 'req', id, cmd, args });
    });
    return withTimeout(result, timeoutMs, () => {
      this.pending.delete(id);
      return `${this.label}: "${cmd}" got no answer within ${timeoutMs} ms; output tail:\n${this.tail()}`;
    });
  }

  /** Asks the worker to exit (so --cpu-prof profiles are written), SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exitInfo) return;
    this.request('exit', undefined, graceMs).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  static killAllSync(): void {
    for (const worker of Worker.live) {
      try {
        worker.child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message())), ms))),
  ]);
}
