/**
 * `nestjs-redis-pubsub/health`: Terminus 12 health indicators reading the live transport.
 * A separate entry point so the main one never loads `@nestjs/terminus` (an optional peer dependency).
 */
export {
  RedisPubSubHealthIndicator,
  REDIS_PUBSUB_HEALTH_OPTIONS,
  type RedisPubSubHealthOptions,
  type RedisPubSubCheckOptions,
  type RedisPubSubHealthData,
  type RedisPubSubHealthResult,
  type UnavailableTransport,
} from './health.indicator.js';
export { RedisPubSubHealthModule, type RedisPubSubHealthModuleOptions } from './health.module.js';
export {
  assessTransport,
  lifeSignStaleAfter,
  worstStatus,
  DEFAULT_HEALTH_THRESHOLDS,
  type HealthStatus,
  type HealthCheckKind,
  type HealthThresholds,
  type TransportHealth,
  type ConnectionHealth,
} from './assess.js';
