import { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { backoffDelay } from './backoff.js';
import type { ResolvedOptions } from './options.js';
import { redact } from './redact.js';
import { redisWithUrl } from './redis-url.js';
import { VerdictTimers } from './verdict-timers.js';

export type ConnectionRole = 'subscriber' | 'publisher';
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'closed';

export interface ConnectionStats {
  role: ConnectionRole;
  state: ConnectionState;
  /** Epoch ms of the last byte received from Redis on this connection. */
  lastLifeSignAt: number | null;
  /** Round trip of the last answered heartbeat PING. */
  heartbeatRttMs: number | null;
  /** Successful reconnects since start. */
  reconnects: number;
  /** Consecutive failed attempts of the current outage. */
  attempt: number;
  lastError: string | null;
  lastErrorAt: number | null;
  stateChangedAt: number;
}

export interface ConnectionEvents {
  /** A new socket is up and Redis answered the handshake; `generation` counts sockets. */
  ready: [generation: number];
  lost: [reason: string];
  /** `cause`: the (redacted) error that ended the last attempt or connection. */
  reconnecting: [attempt: number, delayMs: number, cause: string];
  /** ioredis will not try again (attempt limit, or the user's retryStrategy said stop). */
  'gave-up': [];
  error: [error: Error];
}

/**
 * One ioredis connection whose lifecycle this library owns: our retry strategy,
 * no ioredis auto-resubscribe, no offline queue, a socket generation counter and
 * the time of the last inbound byte (any byte is a life sign).
 */
export class ManagedConnection extends EventEmitter<ConnectionEvents> {
  readonly redis: Redis;
  generation = 0;
  lastLifeSignAt: number | null = null;
  heartbeatRttMs: number | null = null;
  private state: ConnectionState = 'connecting';
  private stateChangedAt = Date.now();
  private reconnects = 0;
  private attempt = 0;
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;
  /** The error of the current attempt (or of the connection that just dropped), until a retry reports it. */
  private cause: string | null = null;
  private everReady = false;
  private readonly secrets: Array<string | undefined>;
  private readonly handshake = new VerdictTimers();

  constructor(
    readonly role: ConnectionRole,
    options: ResolvedOptions,
  ) {
    super();
    const userRetry = options.redis.retryStrategy;
    const redisOptions: RedisOptions = {
      connectionName: `${options.name}:${role === 'subscriber' ? 'sub' : 'pub'}`,
      // close() destroys sockets itself; ioredis' own 2 s fallback timer would only keep the process alive.
      disconnectTimeout: 0,
      ...options.redis,
      lazyConnect: true,
      // Resubscription is ours: ioredis reports "ready" before its own SUBSCRIBEs are acknowledged.
      autoResubscribe: false,
      // Callers get a clear error (or our bounded queue) instead of an unbounded hidden backlog.
      enableOfflineQueue: false,
      retryStrategy: (times: number) => {
        if (this.state === 'closed') return null;
        // ioredis calls this synchronously on close but emits 'close' a tick later.
        this.markLost();
        const delay = userRetry ? userRetry(times) : backoffDelay(times, options.retry);
        this.attempt = times;
        if (typeof delay !== 'number') return delay;
        this.setState(this.everReady ? 'reconnecting' : 'connecting');
        const cause = this.cause ?? 'connection closed';
        this.cause = null;
        this.emit('reconnecting', times, delay, cause);
        return delay;
      },
    };
    this.redis = options.url ? redisWithUrl(redisOptions, options.url) : new Redis(redisOptions);
    this.secrets = [this.redis.options.password, options.redis.password, options.redis.sentinelPassword];

    // ioredis' connectTimeout ends at the TCP connect: a peer that accepts and then says nothing
    // (a load balancer with a dead backend) would hold the handshake, and the transport, forever.
    // connectTimeout 0 is ioredis' "no connect timeout", not a 0 ms handshake.
    const handshakeTimeoutMs = options.heartbeat ? options.heartbeat.timeoutMs : options.redis.connectTimeout || 10_000;
    this.redis.on('connect', () => {
      const stream = this.redis.stream;
      const connectedAt = Date.now();
      stream.on('data', () => {
        if (stream === this.redis.stream) this.lastLifeSignAt = Date.now();
      });
      const watch = (since: number): void =>
        this.handshake.schedule(handshakeTimeoutMs, () => {
          if (stream !== this.redis.stream || this.redis.status !== 'connect' || this.state === 'closed') return;
          // An answer in this window is a slow handshake (e.g. Redis loading its data set), not a dead peer.
          if ((this.lastLifeSignAt ?? 0) >= since) return watch(Date.now());
          this.recordError(`Redis accepted the connection but did not answer within ${handshakeTimeoutMs} ms`);
          stream.destroy();
        });
      watch(connectedAt);
    });
    this.redis.on('ready', () => {
      this.generation++;
      this.lastLifeSignAt = Date.now();
      if (this.everReady) this.reconnects++;
      this.everReady = true;
      this.attempt = 0;
      this.cause = null;
      this.setState('connected');
      this.emit('ready', this.generation);
    });
    this.redis.on('close', () => this.markLost());
    this.redis.on('end', () => {
      if (this.state === 'closed') return;
      this.markLost();
      this.setState('disconnected');
      this.emit('gave-up');
    });
    this.redis.on('error', (error: Error) => {
      this.recordError(error.message);
      this.emit('error', error);
    });
  }

  get status(): ConnectionState {
    return this.state;
  }

  get isReady(): boolean {
    return this.state === 'connected' && this.redis.status === 'ready';
  }

  /** Starts connecting; failures are retried in the background, never rejected here. */
  start(): void {
    this.redis.connect().catch(() => undefined);
  }

  /**
   * Tears the current socket down at once so the retry strategy reconnects.
   * A half-open socket would wait for ioredis' disconnect timeout; destroy() does not.
   */
  kill(reason: string, generation = this.generation): void {
    if (this.state !== 'connected' || generation !== this.generation) return;
    this.recordError(reason);
    this.redis.stream?.destroy();
  }

  recordError(message: string): void {
    this.lastError = redact(message, this.secrets);
    this.lastErrorAt = Date.now();
    this.cause = this.lastError;
  }

  redactText(text: string): string {
    return redact(text, this.secrets);
  }

  /** Sends QUIT, and destroys the socket if Redis does not answer within `timeoutMs`. */
  async close(timeoutMs = 1_000): Promise<void> {
    if (this.state === 'closed') return;
    this.setState('closed');
    this.handshake.clear();
    const redis = this.redis;
    if (redis.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        redis.quit().catch(() => undefined),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    if (redis.status === 'end') return;
    if (redis.status === 'reconnecting') {
      // Between attempts: no socket is left, disconnect() only cancels the pending attempt. ioredis still
      // arms its disconnectTimeout timer on the old, already closed socket; a timer of the same length set
      // after it fires after it, so close() resolves with nothing left (pinned in close-leaves-nothing.spec).
      redis.disconnect();
      await new Promise((resolve) => setTimeout(resolve, redis.options.disconnectTimeout));
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const ended = new Promise<void>((resolve) => {
      redis.once('end', resolve);
      timer = setTimeout(resolve, timeoutMs);
    });
    redis.disconnect();
    redis.stream?.destroy();
    await ended;
    clearTimeout(timer);
  }

  stats(): ConnectionStats {
    return {
      role: this.role,
      state: this.state,
      lastLifeSignAt: this.lastLifeSignAt,
      heartbeatRttMs: this.heartbeatRttMs,
      reconnects: this.reconnects,
      attempt: this.attempt,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt,
      stateChangedAt: this.stateChangedAt,
    };
  }

  private markLost(): void {
    if (this.state !== 'connected') return;
    this.setState('reconnecting');
    this.emit('lost', this.lastError ?? 'connection closed');
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.stateChangedAt = Date.now();
  }
}
