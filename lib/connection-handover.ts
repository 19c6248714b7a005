import type { Redis } from 'ioredis';
import { backoffDelay } from './backoff.js';
import { errorText } from './error-text.js';
import type { ManagedConnection } from './managed-connection.js';
import type { RetryOptions } from './options.js';

/**
 * How long a retired subscriber socket may still deliver after a cut-over: a partition that heals
 * within this time loses nothing; beyond it, what the old socket still held is given up.
 */
export const SUBSCRIBER_DRAIN_MS = 30_000;

/**
 * How long a retired publisher socket may still answer the commands in flight on it, after which
 * they fail as "delivery unknown": a few heartbeat rounds, so an emit() caller is not kept waiting
 * for an answer that is most likely never coming.
 */
export function publisherDrainMs(heartbeat: { intervalMs: number; timeoutMs: number }): number {
  return 2 * (heartbeat.intervalMs + heartbeat.timeoutMs);
}

export interface HandoverPlan {
  /**
   * Readies a standby before it may take over (the subscriber subscribes everything on it);
   * resolves true when it can. `stillWanted` turns false once the standby is no longer needed.
   */
  prepare?(standby: Redis, stillWanted: () => boolean): Promise<boolean>;
  /** A standby was dropped without taking over. */
  discarded?(standby: Redis): void;
  /** A standby took over (`connection.adopt` ran); `old` drains until `drained(old)`. */
  cutOver(old: Redis, suspectForMs: number): void;
  drained?(old: Redis, cause: string): void;
  /** A standby attempt failed; another follows after a backoff delay. */
  failed(reason: string, attempt: number): void;
}

/**
 * Make-before-break for one connection. When it becomes suspect, a standby ioredis instance is
 * opened (and prepared) beside it; the standby takes over only if the suspect socket is still
 * silent once the standby is ready. If the suspect shows life first, or its socket closes (then
 * the ordinary reconnect takes over), the standby is dropped. After a cut-over the old socket is
 * kept open until it answers a PING sent at the cut-over (so it has delivered everything Redis held
 * for it until then, and answered every command sent before) or for `drainMs` at most, then closed.
 */
export class ConnectionHandover {
  private standby?: Redis;
  private failures = 0;
  private retryTimer?: NodeJS.Timeout;
  private progressTimer?: NodeJS.Timeout;
  private readonly draining = new Map<Redis, (cause: string) => void>();

  constructor(
    private readonly connection: ManagedConnection,
    private readonly retry: Required<RetryOptions>,
    /** A standby with commands pending and no byte received for this long is given up (heartbeat.timeoutMs). */
    private readonly silenceMs: number,
    readonly drainMs: number,
    private readonly plan: HandoverPlan,
  ) {
    connection.on('suspect', () => {
      this.failures = 0;
      this.open();
    });
    connection.on('resumed', () => this.cancel());
    connection.on('lost', () => this.cancel());
  }

  get drainingCount(): number {
    return this.draining.size;
  }

  /** Drops the standby and every draining socket (close()). */
  stop(): void {
    this.cancel();
    for (const end of [...this.draining.values()]) end('closed');
  }

  private open(): void {
    if (this.connection.status !== 'suspect' || this.standby) return;
    const standby = this.connection.openStandby();
    this.standby = standby;
    let lastError: string | undefined;
    standby.on('error', (error: Error) => (lastError = this.connection.redactText(error.message)));
    standby.once('close', () => this.fail(standby, lastError ?? 'the connection closed before it was ready'));
    const wanted = () => this.standby === standby && standby.status === 'ready' && this.connection.status === 'suspect';
    standby.connect().then(
      async () => {
        if (!wanted()) return;
        this.watchProgress(standby);
        const ready = this.plan.prepare ? await this.plan.prepare(standby, wanted) : true;
        // Not wanted any more: the suspect resumed or closed (cancel() dropped the standby), or the standby died (fail()).
        if (!wanted()) return;
        if (!ready) return this.fail(standby, 'Redis did not acknowledge every subscription on it');
        this.standby = undefined;
        clearInterval(this.progressTimer);
        this.failures = 0;
        const suspectSince = this.connection.suspectedAt;
        const old = this.connection.adopt(standby);
        this.plan.cutOver(old, Date.now() - suspectSince);
        this.retire(old);
      },
      (error: unknown) => this.fail(standby, lastError ?? errorText(error)),
    );
  }

  /** A standby whose Redis stops answering while it is prepared (subscribing) must not hold the handover forever. */
  private watchProgress(standby: Redis): void {
    const stream = standby.stream;
    let lastData = Date.now();
    stream.on('data', () => (lastData = Date.now()));
    this.progressTimer = setInterval(() => {
      if (standby.commandQueue.length === 0 || Date.now() - lastData < this.silenceMs) return;
      this.fail(standby, `Redis stopped answering it for ${this.silenceMs} ms`);
    }, this.silenceMs);
  }

  private fail(standby: Redis, reason: string): void {
    if (this.standby !== standby) return;
    this.standby = undefined;
    clearInterval(this.progressTimer);
    this.connection.discard(standby);
    this.plan.discarded?.(standby);
    const attempt = ++this.failures;
    this.plan.failed(reason, attempt);
    const delay = backoffDelay(attempt, this.retry);
    if (delay === null) {
      // Out of attempts: let the ordinary reconnect (and its give-up) take over.
      this.connection.redis.stream?.destroy();
      return;
    }
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  private cancel(): void {
    clearTimeout(this.retryTimer);
    clearInterval(this.progressTimer);
    const standby = this.standby;
    if (!standby) return;
    this.standby = undefined;
    this.connection.discard(standby);
    this.plan.discarded?.(standby);
  }

  private retire(old: Redis): void {
    // One drain at a time: a second cut-over ends the first one's drain.
    for (const end of [...this.draining.values()]) end('replaced again');
    let timer: NodeJS.Timeout | undefined;
    const end = (cause: string) => {
      if (!this.draining.delete(old)) return;
      clearTimeout(timer);
      this.connection.discard(old);
      this.plan.drained?.(old, cause);
    };
    this.draining.set(old, end);
    timer = setTimeout(() => end(`not drained within ${this.drainMs} ms`), this.drainMs);
    old.once('close', () => end('its socket closed'));
    // Redis answers in order: the PONG comes after everything it wrote to this socket before it.
    old.ping().then(
      () => end('caught up'),
      () => end('its socket closed'),
    );
  }
}
