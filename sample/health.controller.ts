import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { RedisPubSubHealthIndicator } from '../lib/health/index.js';

/**
 * Terminus endpoints. No instance is passed around: the indicator reads every server and client
 * running in this process (here `sample-server` from connectMicroservice and `sample-client`
 * from ClientsModule). Pass `{ names: [...] }` to watch only some of them.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly redis: RedisPubSubHealthIndicator,
  ) {}

  /** For people and dashboards: `ok`, `degraded` (reconnecting within the grace period, HTTP 200) or `error` (503). */
  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.redis.isHealthy('redis-pubsub')]);
  }

  /** Kubernetes livenessProbe: 503 only when the transport could not recover for `livenessTimeoutMs`. */
  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.redis.isAlive('redis-pubsub')]);
  }

  /** Kubernetes readinessProbe: 503 as soon as events cannot be received. */
  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([() => this.redis.isReady('redis-pubsub')]);
  }
}
