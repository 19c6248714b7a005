/**
 * Reference only, not a contender: the least a Nest custom transport can do per event, to show
 * how much of a real transport's cost is Nest's own handler pipeline (param decorators, pipes,
 * interceptors, exception zone, processing hooks). One ioredis subscriber, JSON.parse, route
 * looked up once per channel, then either Nest's processing hooks + await (what any transport
 * that supports hooks does) or a bare call of the handler Nest registered.
 */
import { BaseRpcContext, Server, type CustomTransportStrategy, type MessageHandler } from '@nestjs/microservices';
import { Redis } from 'ioredis';

export class FloorServer extends Server implements CustomTransportStrategy {
  private readonly sub: Redis;
  private readonly routes = new Map<string, MessageHandler>();

  constructor(
    host: string,
    port: number,
    private readonly hooks: boolean,
  ) {
    super();
    this.sub = new Redis({ host, port, lazyConnect: true });
    this.sub.on('error', () => undefined);
  }

  listen(callback: (error?: unknown) => void): void {
    for (const [pattern, handler] of this.messageHandlers) if (handler.isEventHandler) this.routes.set(pattern, handler);
    this.sub.on('messageBuffer', (channelBuffer: Buffer, payload: Buffer) => {
      const channel = channelBuffer.toString();
      const packet = JSON.parse(payload.toString());
      const handler = this.routes.get(channel);
      if (!handler) return;
      const context = new BaseRpcContext([channel]);
      if (!this.hooks) {
        void handler(packet.data, context);
        return;
      }
      this.runWithProcessingHooks(context, async (runEndHook) => {
        try {
          await handler(packet.data, context);
        } finally {
          runEndHook();
        }
      });
    });
    this.sub
      .connect()
      .then(() => this.sub.subscribe(...this.routes.keys()))
      .then(
        () => callback(),
        (error: unknown) => callback(error),
      );
  }

  async close(): Promise<void> {
    this.sub.disconnect();
  }

  on(): void {}

  unwrap<T>(): T {
    return this.sub as T;
  }
}
