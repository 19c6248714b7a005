import { Module, type DynamicModule } from '@nestjs/common';
import { ClientsModule } from '@nestjs/microservices';
import { TerminusModule } from '@nestjs/terminus';
import { RedisPubSubClient, type RedisPubSubOptions } from '../lib/index.js';
import { RedisPubSubHealthModule } from '../lib/health/index.js';
import { CLIENT_NAME, EVENTS, type SampleConfig } from './config.js';
import { HealthController } from './health.controller.js';
import { OrdersController } from './orders.controller.js';
import { OrdersStore } from './orders.store.js';

@Module({})
export class AppModule {
  static register(config: SampleConfig): DynamicModule {
    const clientOptions: RedisPubSubOptions = {
      url: config.redisUrl,
      name: CLIENT_NAME,
      heartbeat: config.heartbeat,
      retry: config.retry,
    };
    return {
      module: AppModule,
      imports: [
        TerminusModule.forRoot(),
        RedisPubSubHealthModule.forRoot(config.health),
        ClientsModule.register([{ name: EVENTS, customClass: RedisPubSubClient, options: clientOptions }]),
      ],
      controllers: [OrdersController, HealthController],
      providers: [OrdersStore],
    };
  }
}
