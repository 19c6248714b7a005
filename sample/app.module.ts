import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { ClientsModule } from '@nestjs/microservices';
import { TerminusModule } from '@nestjs/terminus';
import { RedisPubSubClient, type RedisPubSubOptions } from '../lib/index.js';
import { RedisPubSubHealthModule } from '../lib/health/index.js';
import { CLIENT_NAME, EVENTS, type SampleConfig } from './config.js';
import { HealthController } from './health.controller.js';
import { MetricsController, PROMETHEUS } from './metrics.js';
import { OrdersController } from './orders.controller.js';
import { OrdersStore } from './orders.store.js';

@Module({})
export class AppModule {
  static register(config: SampleConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        // Settings reach the app through ConfigService, as REDIS_URL does in most apps. main.ts builds
        // them from the environment (tests build their own), so process.env is not read a second time.
        ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, skipProcessEnv: true, load: [() => ({ ...config })] }),
        TerminusModule.forRoot(),
        RedisPubSubHealthModule.forRoot(config.health),
        ClientsModule.registerAsync([
          {
            name: EVENTS,
            inject: [ConfigService],
            useFactory: (settings: ConfigService<SampleConfig, true>) => ({
              customClass: RedisPubSubClient,
              options: {
                url: settings.get('redisUrl', { infer: true }),
                name: CLIENT_NAME,
                heartbeat: settings.get('heartbeat', { infer: true }),
                retry: settings.get('retry', { infer: true }),
              } satisfies RedisPubSubOptions,
            }),
          },
        ]),
      ],
      controllers: config.prometheus ? [OrdersController, HealthController, MetricsController] : [OrdersController, HealthController],
      providers: config.prometheus ? [OrdersStore, { provide: PROMETHEUS, useValue: config.prometheus }] : [OrdersStore],
    };
  }
}
