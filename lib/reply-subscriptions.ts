import { ReplyError } from 'ioredis';
import { RedisPubSubStatus } from './constants.js';
import { errorText } from './error-text.js';
import type { PubSubLink } from './pubsub-link.js';
import { nestReplyChannel } from './reply-packet.js';

/**
 * Reply channels kept subscribed while no request uses them. Beyond this, the least recently used
 * idle ones are unsubscribed, so a client calling ever new channels (`user.123`, `user.124`, ...)
 * does not pile up subscriptions; one in use by a pending request is never dropped.
 */
export const IDLE_REPLY_CHANNELS = 1_000;

/**
 * The `<channel>.reply` channels a client listens on, one per channel it sends requests to, so it
 * also hears responders that follow Nest's own Redis protocol: a `Transport.REDIS` server ignores
 * `replyTo` and answers there. Each one is SUBSCRIBEd, and acknowledged by Redis, before the first
 * request on its channel is published, and belongs to the subscription registry (resubscribed and
 * verified after every reconnect) until it is dropped as idle or the client closes. This
 * transport's servers answer on the requester's own `replyTo` channel only, so these channels
 * never carry their replies: no fan-out of every reply to every client.
 */
export class ReplySubscriptions {
  /** Acknowledged reply channels, least recently used first. */
  private readonly listening = new Set<string>();
  /** Pending requests per reply channel. */
  private readonly users = new Map<string, number>();
  private readonly refused = new Set<string>();
  private readonly subscribing = new Map<string, Promise<boolean>>();

  constructor(private readonly link: PubSubLink) {}

  /** Whether `channel` is one of the `<channel>.reply` channels this client listens on. */
  has(channel: string): boolean {
    return this.listening.has(channel);
  }

  /**
   * A request on `channel` starts using its reply channel (call `release` when it ends). `true`
   * (synchronously once known) when that is subscribed, or Redis refused it (logged once: requests
   * still reach this transport's servers through `replyTo`); `false` when the subscriber socket
   * was lost or replaced before Redis acknowledged it.
   */
  acquire(channel: string): true | Promise<boolean> {
    const name = nestReplyChannel(channel);
    this.users.set(name, (this.users.get(name) ?? 0) + 1);
    if (this.listening.has(name)) {
      this.listening.delete(name); // most recently used last
      this.listening.add(name);
      return true;
    }
    if (this.refused.has(name)) return true;
    let pending = this.subscribing.get(name);
    if (!pending) {
      pending = this.subscribe(name).finally(() => this.subscribing.delete(name));
      this.subscribing.set(name, pending);
    }
    return pending;
  }

  release(channel: string): void {
    const name = nestReplyChannel(channel);
    const users = (this.users.get(name) ?? 1) - 1;
    if (users > 0) return void this.users.set(name, users);
    this.users.delete(name);
    if (this.listening.size > IDLE_REPLY_CHANNELS) this.dropIdle();
  }

  private dropIdle(): void {
    // Not while a resubscription may be in flight: it would confirm a name the registry no longer wants.
    if (this.link.status !== RedisPubSubStatus.CONNECTED) return;
    const sub = this.link.subscriber;
    for (const name of this.listening) {
      if (this.listening.size <= IDLE_REPLY_CHANNELS) return;
      if (this.users.has(name)) continue;
      this.listening.delete(name);
      this.link.registry.remove('channel', name);
      // A socket that is down has no subscription left, and the next one will not get it from the registry.
      if (sub.isReady) sub.redis.unsubscribe(name).catch(() => undefined);
    }
  }

  private async subscribe(name: string): Promise<boolean> {
    const sub = this.link.subscriber;
    const generation = sub.generation;
    const current = () => sub.generation === generation && sub.isReady;
    if (!current()) return false;
    try {
      await sub.redis.subscribe(name);
    } catch (error) {
      // Only Redis' own refusal (an ACL's NOPERM, say) is final; anything else is a lost socket.
      if (!(error instanceof ReplyError) || !current()) return false;
      // Bounded like the idle channels: after a clear, a refusal is asked (and warned) again.
      if (this.refused.size >= IDLE_REPLY_CHANNELS) this.refused.clear();
      this.refused.add(name);
      this.link.logger.warn(
        `Redis refused SUBSCRIBE "${name}" (${sub.redactText(errorText(error))}): replies that Nest's built-in Redis ` +
          `servers publish there will not be heard; this transport's servers answer on the client's own reply channel`,
      );
      return true;
    }
    if (!current()) return false;
    this.link.registry.addConfirmed('channel', name);
    this.listening.add(name);
    return true;
  }
}
