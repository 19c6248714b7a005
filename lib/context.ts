import { BaseRpcContext } from '@nestjs/microservices';

type RedisPubSubContextArgs = [channel: string, pattern: string | undefined, metadata: Record<string, unknown> | undefined];

/** `@Ctx() ctx: RedisPubSubContext` in handlers of this transport. */
export class RedisPubSubContext extends BaseRpcContext<RedisPubSubContextArgs> {
  /** The channel the message was published to. */
  getChannel(): string {
    return this.args[0];
  }

  /** The subscribed glob for pattern (PSUBSCRIBE) handlers, otherwise undefined. */
  getPattern(): string | undefined {
    return this.args[1];
  }

  /** Metadata the sender attached to the envelope (e.g. trace context), if any. */
  getMetadata(): Record<string, unknown> | undefined {
    return this.args[2];
  }
}
