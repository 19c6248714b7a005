import { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { backoffDelay } from './backoff.js';
import type { ResolvedOptions } from './options.js';
import { redact } from './redact.js';
import { redisWithUrl } from './redis-url.js';
import { VerdictTimers } from './verdict-timers.js';
import { within } from './within.js';

export type ConnectionRole = 'subscriber' | 'publisher';
/**
 * `suspect`: the socket fell silent (heartbeat) or failed the path probe. It is kept open, since a
 * stalled Redis or a partition that heals still delivers what it holds, while a replacement is
 * prepared beside it.
 */
export type ConnectionState = 'connecting' | 'connected' | 'suspect' | 'reconnecting' | 'disconnected' | 'closed';

/** What ends a suspicion without a replacement: any inbound byte, a pub/sub message, or nothing. */
export type ResumeOn = 'any-byte' | 'message' | 'never';

export interface ConnectionStats {
  role: ConnectionRole;
  state: ConnectionState;
  /** Epoch ms of the last byte received from Redis on this connection. */
  lastLifeSignAt: number | null;
  /** Round trip of the last answered heartbeat PING. */
  heartbeatRttMs: number | null;
  /** Successful reconnects since start, cut-overs to a replacement socket included. */
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
  suspect: [reason: string];
  /** The suspect socket showed life again: it is kept. */
  resumed: [suspectForMs: number];
  /** A prepared replacement socket took over; `retired` is the old one, still open, to drain and close. */
  replaced: [generation: number, retired: Redis, suspectForMs: number];
}

/**
 * Why a command that was written to a socket gets an error instead of being re-sent: Redis may
 * already have executed it (a PUBLISH may have been delivered), so only the caller can decide.
 */
export const DELIVERY_UNKNOWN =
  'the connection to Redis was lost before Redis answered: the command may or may not have been executed (delivery unknown)';

/**
 * One ioredis connection whose lifecycle this library owns: our retry strategy,
 * no ioredis auto-resubscribe, no offline queue, no re-sent commands, a socket generation
 * counter and the time of the last inbound byte (any byte is a life sign). A silent socket
 * becomes `suspect` rather than being destroyed; a replacement (a standby ioredis instance,
 * opened beside it) can then be `adopt`ed, and the retired one drained by the caller.
 */
export class ManagedConnection extends EventEmitter<ConnectionEvents> {
  generation = 0;
  lastLifeSignAt: number | null = null;
  heartbeatRttMs: number | null = null;
  private current: Redis;
  private state: ConnectionState = 'connecting';
  private stateChangedAt = Date.now();
  private reconnects = 0;
  private attempt = 0;
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;
  /** The cause of the loss of the current socket, when we know it (heartbeat, handshake, socket error). */
  private lossReason: string | null = null;
  /** The error of the current attempt (or of the connection that just dropped), until a retry reports it. */
  private cause: string | null = null;
  private everReady = false;
  private suspectSince = 0;
  private suspectReason = '';
  private resumeOn: ResumeOn = 'any-byte';
  /** Standby and retired ioredis instances, closed with this connection. */
  private readonly others = new Set<Redis>();
  private readonly secrets: Array<string | undefined>;
  private readonly handshake = new VerdictTimers();
  private readonly handshakeTimeoutMs: number;

  constructor(
    readonly role: ConnectionRole,
    private readonly options: ResolvedOptions,
  ) {
    super();
    // ioredis' connectTimeout ends at the TCP connect: a peer that accepts and then says nothing
    // (a load balancer with a dead backend) would hold the handshake, and the transport, forever.
    // connectTimeout 0 is ioredis' "no connect timeout", not a 0 ms handshake.
    this.handshakeTimeoutMs = options.heartbeat ? options.heartbeat.timeoutMs : options.redis.connectTimeout || 10_000;
    this.current = this.create();
    this.secrets = [this.current.options.password, options.redis.password, options.redis.sentinelPassword];
  }

  /** The ioredis instance currently in use (it changes when a replacement is adopted). */
  get redis(): Redis {
    return this.current;
  }

  get status(): ConnectionState {
    return this.state;
  }

  get isReady(): boolean {
    return this.state === 'connected' && this.current.status === 'ready';
  }

  /** Since when the connection is suspect (epoch ms), 0 when it is not. */
  get suspectedAt(): number {
    return this.state === 'suspect' ? this.suspectSince : 0;
  }

  /** Starts connecting; failures are retried in the background, never rejected here. */
  start(): void {
    this.current.connect().catch(() => undefined);
  }

  /**
   * The socket fell silent or failed the probe: keep it open, say so, and let the caller prepare a
   * replacement. It leaves this state by showing life (`resumeOn`), being replaced, or closing.
   */
  suspect(reason: string, resumeOn: ResumeOn): boolean {
    if (this.state !== 'connected') return false;
    this.recordError(reason);
    this.suspectReason = this.lastError ?? reason;
    this.resumeOn = resumeOn;
    this.suspectSince = Date.now();
    this.setState('suspect');
    this.emit('suspect', reason);
    return true;
  }

  /** A pub/sub message arrived on the current socket: proof of life for a suspect subscriber. */
  messageArrived(): void {
    if (this.state === 'suspect' && this.resumeOn !== 'never') this.resume();
  }

  /** A fresh ioredis instance with the same options that never reconnects on its own (until adopted). */
  openStandby(): Redis {
    const standby = this.create();
    this.others.add(standby);
    standby.once('end', () => this.others.delete(standby));
    return standby;
  }

  /** The standby becomes the current socket; the old one is returned, still open, for the caller to drain. */
  adopt(standby: Redis): Redis {
    const old = this.current;
    const suspectForMs = Date.now() - this.suspectSince;
    this.others.delete(standby);
    this.others.add(old);
    old.once('end', () => this.others.delete(old));
    this.current = standby;
    this.generation++;
    this.lastLifeSignAt = Date.now();
    this.reconnects++;
    this.attempt = 0;
    this.lossReason = null;
    this.setState('connected');
    this.emit('replaced', this.generation, old, suspectForMs);
    return old;
  }

  /**
   * Ends an ioredis instance that is not (or no longer) the current one: every command still
   * awaiting an answer fails with DELIVERY_UNKNOWN, never silently, then the socket is destroyed.
   */
  discard(instance: Redis): void {
    if (instance === this.current) return;
    settleInFlight(instance);
    instance.disconnect();
    instance.stream?.destroy();
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
    for (const other of this.others) this.discard(other);
    const redis = this.current;
    if (redis.status === 'ready') await within(redis.quit().catch(() => undefined), timeoutMs);
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

  /** One ioredis instance; its events count only while it is the current one. */
  private create(): Redis {
    const { options, role } = this;
    const userRetry = options.redis.retryStrategy;
    const heartbeat = options.heartbeat;
    let instance: Redis;
    const redisOptions: RedisOptions = {
      connectionName: `${options.name}:${role === 'subscriber' ? 'sub' : 'pub'}`,
      // close() destroys sockets itself; ioredis' own 2 s fallback timer would only keep the process alive.
      disconnectTimeout: 0,
      // A SYN nobody answers would otherwise cost ioredis' 10 s default: the heartbeat's verdict applies.
      ...(heartbeat ? { connectTimeout: heartbeat.timeoutMs } : {}),
      ...options.redis,
      lazyConnect: true,
      // Resubscription is ours: ioredis reports "ready" before its own SUBSCRIBEs are acknowledged.
      autoResubscribe: false,
      // A command written to a lost socket may have been executed (a PUBLISH delivered): never re-send it.
      // ioredis would otherwise keep it in prevCommandQueue and drop it unsettled; settleInFlight() fails it.
      autoResendUnfulfilledCommands: false,
      // Callers get a clear error (or our bounded queue) instead of an unbounded hidden backlog.
      enableOfflineQueue: false,
      retryStrategy: (times: number) => {
        // ioredis calls this synchronously in its 'close' handler, after moving the unanswered
        // commands to prevCommandQueue (the same queue object): fail them now, never leave them hanging.
        settleInFlight(instance);
        if (instance !== this.current || this.state === 'closed') return null;
        // ioredis emits 'close' a tick later.
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
    instance = options.url ? redisWithUrl(redisOptions, options.url) : new Redis(redisOptions);

    instance.on('connect', () => {
      const stream = instance.stream;
      stream.on('data', () => {
        if (instance === this.current && stream === instance.stream) this.lifeSign();
      });
      this.watchHandshake(instance, Date.now());
    });
    instance.on('ready', () => {
      if (instance !== this.current) return;
      this.generation++;
      this.lastLifeSignAt = Date.now();
      this.lossReason = null;
      if (this.everReady) this.reconnects++;
      this.everReady = true;
      this.attempt = 0;
      this.cause = null;
      this.setState('connected');
      this.emit('ready', this.generation);
    });
    instance.on('close', () => {
      if (instance === this.current) this.markLost();
    });
    instance.on('end', () => {
      if (instance !== this.current || this.state === 'closed') return;
      this.markLost();
      this.setState('disconnected');
      this.emit('gave-up');
    });
    instance.on('error', (error: Error) => {
      if (instance !== this.current) return;
      this.recordError(error.message);
      if (this.state === 'connected' || this.state === 'suspect') this.lossReason = this.lastError;
      this.emit('error', error);
    });
    return instance;
  }

  private watchHandshake(instance: Redis, since: number): void {
    const stream = instance.stream;
    const timeoutMs = this.handshakeTimeoutMs;
    this.handshake.schedule(timeoutMs, () => {
      if (stream !== instance.stream || instance.status !== 'connect' || this.state === 'closed') return;
      // An answer in this window is a slow handshake (e.g. Redis loading its data set), not a dead peer.
      if (instance === this.current && (this.lastLifeSignAt ?? 0) >= since) return this.watchHandshake(instance, Date.now());
      const message = `Redis accepted the connection but did not answer within ${timeoutMs} ms`;
      if (instance === this.current) this.recordError(message);
      else instance.emit('error', new Error(message));
      stream.destroy();
    });
  }

  private lifeSign(): void {
    this.lastLifeSignAt = Date.now();
    if (this.state === 'suspect' && this.resumeOn === 'any-byte') this.resume();
  }

  private resume(): void {
    const suspectForMs = Date.now() - this.suspectSince;
    this.setState('connected');
    this.emit('resumed', suspectForMs);
  }

  private markLost(): void {
    if (this.state !== 'connected' && this.state !== 'suspect') return;
    // The cause of THIS loss: an error seen on this socket, else what made it suspect, else a plain close.
    const suspicion = this.state === 'suspect' ? `closed while suspect after ${this.suspectReason}` : null;
    const reason = this.lossReason ?? suspicion ?? 'connection closed by the peer';
    this.setState('reconnecting');
    this.lossReason = null;
    this.emit('lost', reason);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.stateChangedAt = Date.now();
  }
}

/** Fails every command still awaiting an answer on `instance` (see DELIVERY_UNKNOWN). */
function settleInFlight(instance: Redis): void {
  const queue = instance.commandQueue;
  if (queue.length === 0) return;
  const error = new Error(DELIVERY_UNKNOWN);
  for (let item = queue.shift(); item !== undefined; item = queue.shift()) item.command.reject(error);
}
