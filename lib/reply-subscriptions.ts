import { ReplyError } from 'ioredis';
import { errorText } from './error-text.js';
import type { PubSubLink } from './pubsub-link.js';
import { nestReplyChannel } from './reply-packet.js';

/**
 * The `<channel>.reply` channels a client listens on, one per channel it sends requests to, so it
 * also hears responders that follow Nest's own Redis protocol: a `Transport.REDIS` server ignores
 * `replyTo` and answers there. Each one is SUBSCRIBEd, and acknowledged by Redis, before the first
 * request on its channel is published; from then on it belongs to the subscription registry
 * (resubscribed and verified after every reconnect) until close(). This transport's servers answer
 * on the requester's own `replyTo` channel only, so these channels never carry their replies: no
 * fan-out of every reply to every client.
 */
export class ReplySubscriptions {
  private readonly listening = new Set<string>();
  private readonly refused = new Set<string>();
  private readonly subscribing = new Map<string, Promise<boolean>>();

  constructor(private readonly link: PubSubLink) {}

  /** Whether `channel` is one of the `<channel>.reply` channels this client listens on. */
  has(channel: string): boolean {
    return this.listening.has(channel);
  }

  /**
   * `true` (synchronously once known) when the reply channel of `channel` is subscribed, or Redis
   * refused it (logged once: requests still reach this transport's servers through `replyTo`);
   * `false` when the subscriber socket was lost or replaced before Redis acknowledged it.
   */
  ensure(channel: string): true | Promise<boolean> {
    const name = nestReplyChannel(channel);
    if (this.listening.has(name) || this.refused.has(name)) return true;
    let pending = this.subscribing.get(name);
    if (!pending) {
      pending = this.subscribe(name).finally(() => this.subscribing.delete(name));
      this.subscribing.set(name, pending);
    }
    return pending;
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
