import { randomUUID } from 'node:crypto';
import {
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  Logger,
  Post,
  ServiceUnavailableException,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubContext } from '../lib/index.js';
import { EVENTS } from './config.js';
import { OrdersStore, type Order } from './orders.store.js';

/**
 * HTTP in, events out and back in: `POST /orders` emits `orders.created` through the
 * ClientsModule client; the `@EventPattern` handlers below (same app, hybrid) process it;
 * `GET /orders` lists what they processed.
 */
@Controller('orders')
export class OrdersController implements OnApplicationBootstrap {
  private readonly logger = new Logger('Orders');

  constructor(
    @Inject(EVENTS) private readonly events: RedisPubSubClient,
    private readonly store: OrdersStore,
  ) {}

  /**
   * A client starts (and registers for health checks) on its first connect(), emit() or send().
   * Starting it here means /health watches it from the first request on. Not awaited: the app
   * serves HTTP (and answers its probes) while Redis is still unreachable.
   */
  onApplicationBootstrap(): void {
    this.events.connect().catch((error: unknown) => this.logger.warn(`client not connected: ${String(error)}`));
  }

  @Post()
  @HttpCode(202)
  async create(@Body() body: { item?: unknown; quantity?: unknown } = {}): Promise<{ accepted: Order }> {
    const order: Order = {
      id: randomUUID(),
      item: typeof body.item === 'string' ? body.item : 'unknown',
      quantity: typeof body.quantity === 'number' ? body.quantity : 1,
      createdAt: new Date().toISOString(),
    };
    try {
      // Published at once, or held in the client's bounded offline queue while Redis is away.
      await lastValueFrom(this.events.emit('orders.created', order), { defaultValue: undefined });
    } catch (error) {
      throw new ServiceUnavailableException(`the event could not be published: ${error instanceof Error ? error.message : String(error)}`);
    }
    return { accepted: order };
  }

  @Get()
  list(): { processed: OrdersStore['processed']; audited: number } {
    return { processed: this.store.processed, audited: this.store.audited };
  }

  @EventPattern<string>('orders.created')
  created(@Payload() order: Order, @Ctx() context: RedisPubSubContext): void {
    this.store.add({ ...order, processedAt: new Date().toISOString() });
    this.logger.log(`processed order ${order.id} (${order.quantity} x ${order.item}) from channel ${context.getChannel()}`);
  }

  /** A PSUBSCRIBE glob: sees every `orders.*` event. */
  @EventPattern<string>('orders.*', { psubscribe: true })
  audit(): void {
    this.store.audited++;
  }
}
