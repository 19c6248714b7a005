import { Module, type DynamicModule } from '@nestjs/common';
import { REDIS_PUBSUB_HEALTH_OPTIONS, RedisPubSubHealthIndicator, type RedisPubSubHealthOptions } from './health.indicator.js';

export interface RedisPubSubHealthModuleOptions extends RedisPubSubHealthOptions {
  /** Register the indicator globally, so every module can inject it without importing this one. */
  isGlobal?: boolean;
}

/**
 * Provides `RedisPubSubHealthIndicator`. Nothing to wire: the indicator finds every running
 * `RedisPubSubServer` / `RedisPubSubClient` of the process through the transport registry,
 * whether it came from `createMicroservice`, `connectMicroservice` or `ClientsModule`.
 *
 * `imports: [RedisPubSubHealthModule]` uses the defaults; `RedisPubSubHealthModule.forRoot({...})` sets them.
 */
@Module({
  providers: [RedisPubSubHealthIndicator],
  exports: [RedisPubSubHealthIndicator],
})
export class RedisPubSubHealthModule {
  static forRoot(options: RedisPubSubHealthModuleOptions = {}): DynamicModule {
    const { isGlobal, ...thresholds } = options;
    return {
      module: RedisPubSubHealthModule,
      global: isGlobal ?? false,
      providers: [{ provide: REDIS_PUBSUB_HEALTH_OPTIONS, useValue: thresholds }],
      exports: [RedisPubSubHealthIndicator],
    };
  }
}
