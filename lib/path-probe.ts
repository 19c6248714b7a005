import { errorText } from './error-text.js';
import type { ManagedConnection } from './managed-connection.js';
import { VerdictTimers } from './verdict-timers.js';

/**
 * Proves the whole path publisher -> Redis -> subscriber. A live socket is not
 * enough: a proxy or load balancer can move a connection to another Redis where
 * the subscriptions do not exist while PING still answers. Each round PUBLISHes a
 * token on a channel only this instance subscribes to; it fails when Redis counts
 * no receiver, or when neither the token nor any other message reached the
 * subscriber within `timeoutMs` after Redis accepted the PUBLISH. The caller decides which side
 * to suspect (the subscriber first; the publisher when a renewed subscriber still misses it).
 */
export class PathProbe {
  private sequence = 0;
  private lastSeen = 0;
  private stopped = false;
  private readonly verdicts = new VerdictTimers();

  constructor(
    /** Changes when a shard probe's slot moves away. */
    public channel: string,
    /** A shard channel (SPUBLISH) on a cluster. */
    private readonly sharded: boolean,
    private readonly publisher: ManagedConnection,
    private readonly subscriber: ManagedConnection,
    private readonly timeoutMs: number,
    private readonly messagesSeen: () => number,
    private readonly onFail: (reason: string) => void,
    private readonly onPass: () => void,
    /** The probe's PUBLISH failed (a lost socket is the heartbeat's business; Redis' own answer may say more). */
    private readonly onRefused: (error: string) => void,
  ) {}

  /** Called once per heartbeat round while the transport reports connected. */
  send(): void {
    if (!this.publisher.isReady || !this.subscriber.isReady) return;
    const sequence = ++this.sequence;
    const generation = this.subscriber.generation;
    const messagesBefore = this.messagesSeen();
    const token = String(sequence);
    (this.sharded ? this.publisher.redis.spublish(this.channel, token) : this.publisher.redis.publish(this.channel, token)).then(
      (receivers) => {
        if (this.stopped || generation !== this.subscriber.generation) return;
        if (receivers === 0) {
          this.onFail('the path probe reached no subscriber: the subscription is gone from the server');
          return;
        }
        this.verdicts.schedule(this.timeoutMs, () => {
          if (this.stopped || generation !== this.subscriber.generation) return;
          if (this.lastSeen >= sequence) return this.onPass();
          if (this.messagesSeen() !== messagesBefore || !this.subscriber.isReady) return;
          this.onFail(`the path probe was not delivered within ${this.timeoutMs} ms`);
        });
      },
      // A publisher that does not answer is its own heartbeat's business (a suspect one is then replaced).
      (error: unknown) => this.onRefused(errorText(error)),
    );
  }

  received(payload: Buffer): void {
    const sequence = Number(payload.toString());
    if (sequence > this.lastSeen) this.lastSeen = sequence;
  }

  stop(): void {
    this.stopped = true;
    this.verdicts.clear();
  }
}
