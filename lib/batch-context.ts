import { BaseRpcContext } from '@nestjs/microservices';
import type { RedisPubSubContext } from './context.js';

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
