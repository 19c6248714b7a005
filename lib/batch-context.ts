import { BaseRpcContext } from '@nestjs/microservices';
import { RedisPubSubContext } from './context.js';

/**
 * `@Ctx() ctx: RedisPubSubBatchContext` in a batch handler: `getMessages()[i]` is the context
 * (channel, pattern, metadata) of the i-th payload of the batch.
 */
export class RedisPubSubBatchContext extends BaseRpcContext<[messages: RedisPubSubContext[]]> {
  /** One context per payload, in the same order as the payload array. */
  getMessages(): RedisPubSubContext[] {
    return this.args[0];
  }

  /** Number of messages in the batch. */
  get size(): number {
    return this.args[0].length;
  }
}

/**
 * The transport's batch context: the per-message contexts are built on first use, so a handler
 * that never reads them (through `@Ctx()` or a processing hook) costs no allocation per message.
 */
export class LazyBatchContext extends RedisPubSubBatchContext {
  private pending: boolean;

  /** `channels`: one channel for all (a channel handler) or each message's; `metadata[i]` may be a hole. */
  constructor(
    private readonly count: number,
    private readonly channels: string | string[],
    private readonly pattern: string | undefined,
    private readonly metadata: Array<Record<string, unknown> | undefined>,
  ) {
    super([[]]);
    this.pending = count > 0;
  }

  override getMessages(): RedisPubSubContext[] {
    this.build();
    return super.getMessages();
  }

  override getArgs(): [messages: RedisPubSubContext[]] {
    this.build();
    return super.getArgs();
  }

  override getArgByIndex(index: number): any {
    this.build();
    return super.getArgByIndex(index);
  }

  override get size(): number {
    return this.count;
  }

  private build(): void {
    if (!this.pending) return;
    this.pending = false;
    const messages = this.args[0];
    const channels = this.channels;
    for (let i = 0; i < this.count; i++) {
      messages.push(new RedisPubSubContext([typeof channels === 'string' ? channels : channels[i]!, this.pattern, this.metadata[i]]));
    }
  }
}
