import type { HeartbeatOptions } from './options.js';
import type { ManagedConnection } from './managed-connection.js';
import { VerdictTimers } from './verdict-timers.js';

/**
 * PINGs one connection every `intervalMs` and reports it silent when no byte at all
 * arrived within `timeoutMs` after a PING (the caller suspects it and prepares a replacement;
 * a silent socket may still deliver what a stalled Redis or a partition holds). Any inbound data is a life sign, so a
 * subscriber whose PONG queues behind a flood is alive, and verdicts wait for
 * pending I/O (VerdictTimers), so a blocked event loop is no false reconnect.
 * Answers are tagged with the socket generation: ioredis re-sends unanswered
 * commands after a reconnect, and a PONG from the new socket says nothing of the old.
 */
export class Heartbeat {
  private interval?: NodeJS.Timeout;
  private readonly verdicts = new VerdictTimers();

  constructor(
    private readonly connection: ManagedConnection,
    private readonly settings: Required<HeartbeatOptions>,
    private readonly onSilent: (silentForMs: number, generation: number) => void,
  ) {}

  start(): void {
    this.interval ??= setInterval(() => this.beat(), this.settings.intervalMs);
  }

  stop(): void {
    clearInterval(this.interval);
    this.interval = undefined;
    this.verdicts.clear();
  }

  private beat(): void {
    const connection = this.connection;
    if (!connection.isReady) return;
    const generation = connection.generation;
    const sentAt = Date.now();
    connection.redis.ping().then(
      () => {
        if (connection.generation === generation) connection.heartbeatRttMs = Date.now() - sentAt;
      },
      () => undefined,
    );
    this.verdicts.schedule(this.settings.timeoutMs, () => {
      if (connection.generation !== generation || !connection.isReady) return;
      const last = connection.lastLifeSignAt ?? 0;
      if (last < sentAt) this.onSilent(Date.now() - last, generation);
    });
  }
}
