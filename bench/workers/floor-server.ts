/**
 * The "bare Nest transport" contender: the least a Nest custom transport can do per event, the
 * honest ceiling of per-event delivery, which shows how much of a real transport's cost is Nest's
 * own handler pipeline (param decorators, pipes, interceptors, exception zone). One ioredis
 * subscriber, JSON.parse, route looked up once per channel, then a bare call of the handler Nest
 * registered (no processing hooks: RedisPubSubServer skips them too until instrumentation installs some).
 */
import { BaseRpcContext, Server, type CustomTransportStrategy, type MessageHandler } from '@nestjs/microservices';
import { Redis } from 'ioredis';

export class FloorServer extends Server implements CustomTransportStrategy {
  private readonly sub: Redis;
  private readonly routes = new Map<string, MessageHandler>();

  constructor(host: string, port: number) {
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
      void handler(packet.data, context);
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
