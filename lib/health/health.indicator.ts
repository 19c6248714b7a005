import { Inject, Injectable, Optional } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { errorText } from '../error-text.js';
import { redact } from '../redact.js';
import { transportRegistry, type MonitoredTransport } from '../transport-registry.js';
import {
  assessTransport,
  DEFAULT_HEALTH_THRESHOLDS,
  worstStatus,
  type HealthCheckKind,
  type HealthStatus,
  type HealthThresholds,
  type TransportHealth,
} from './assess.js';

/** Injection token of the options given to `RedisPubSubHealthModule.forRoot()`. */
export const REDIS_PUBSUB_HEALTH_OPTIONS: unique symbol = Symbol.for('nestjs-redis-pubsub:health-options');

export interface RedisPubSubHealthOptions {
  /**
   * `isHealthy()`: how long reconnecting / resubscribing is reported `degraded` (HTTP 200)
   * before it turns `down` (HTTP 503). Default 10 000.
   */
  gracePeriodMs?: number;
  /**
   * `isAlive()`: how long the transport may stay unable to recover before liveness fails
   * (and Kubernetes restarts the pod). Default 300 000 (5 min).
   */
  livenessTimeoutMs?: number;
  /**
   * A connection that reports connected but received no byte for longer than this is stale (`down`).
   * Default: per instance, `2 * heartbeat.intervalMs + heartbeat.timeoutMs`; not checked when the
   * instance runs without heartbeats. `false`: never check.
   */
  lifeSignStaleAfterMs?: number | false;
}

/** Per-call options: which instances to watch, and thresholds overriding the module's. */
export interface RedisPubSubCheckOptions extends RedisPubSubHealthOptions {
  /**
   * Instance names (the `name` option of `RedisPubSubServer` / `RedisPubSubClient`) to watch.
   * Default: every instance running in this process. A listed name with no running instance is `down`.
   */
  names?: string[];
}

/** The data under the check's key in Terminus's output (besides `status`). */
export type RedisPubSubHealthData = {
  message: string;
  transports: Record<string, TransportHealth | UnavailableTransport>;
};

/** What each check returns: `{ [key]: { status, message, transports } }`. */
export type RedisPubSubHealthResult<Key extends string = string> = HealthIndicatorResult<Key, HealthStatus, RedisPubSubHealthData>;

/** A watched name with no instance to read. */
export interface UnavailableTransport {
  status: 'down';
  reasons: string[];
}

const DEFAULT_KEY = 'redis-pubsub';

/**
 * Terminus 12 health indicator reading the live state of every `RedisPubSubServer` and
 * `RedisPubSubClient` of this process (found through the process-wide transport registry,
 * so no glue is needed whatever created them). It opens no connection and does no I/O:
 * each call reads `getStats()` synchronously, answers at once even when Redis hangs, and
 * never throws (a failure is reported as `down`).
 */
@Injectable()
export class RedisPubSubHealthIndicator {
  private readonly health: HealthIndicatorService;
  private readonly defaults: Required<Omit<RedisPubSubHealthOptions, 'lifeSignStaleAfterMs'>> &
    Pick<RedisPubSubHealthOptions, 'lifeSignStaleAfterMs'>;

  constructor(
    @Optional() @Inject(REDIS_PUBSUB_HEALTH_OPTIONS) options?: RedisPubSubHealthOptions,
    @Optional() healthIndicatorService?: HealthIndicatorService,
  ) {
    const problem = validate(options ?? {});
    if (problem) throw new TypeError(`nestjs-redis-pubsub health: ${problem}`);
    this.defaults = { ...DEFAULT_HEALTH_THRESHOLDS, ...stripUndefined(options ?? {}) };
    this.health = healthIndicatorService ?? new HealthIndicatorService();
  }

  /**
   * General health (`GET /health`): `up` when connected, fresh and fully subscribed; `degraded`
   * while reconnecting or resubscribing within `gracePeriodMs`; `down` beyond it, when a life sign
   * is stale, subscriptions are missing while connected, or the transport gave up or was closed.
   */
  isHealthy<const Key extends string = typeof DEFAULT_KEY>(key?: Key, options?: RedisPubSubCheckOptions): RedisPubSubHealthResult<Key> {
    return this.check('health', key, options);
  }

  /** Readiness probe: `down` as soon as events cannot be received; no grace period (the probe's failureThreshold smooths blips). */
  isReady<const Key extends string = typeof DEFAULT_KEY>(key?: Key, options?: RedisPubSubCheckOptions): RedisPubSubHealthResult<Key> {
    return this.check('readiness', key, options);
  }

  /**
   * Liveness probe: `down` only when the transport has been unable to recover for longer than
   * `livenessTimeoutMs`, gave up reconnecting, or was closed; `degraded` (HTTP 200) while it recovers.
   */
  isAlive<const Key extends string = typeof DEFAULT_KEY>(key?: Key, options?: RedisPubSubCheckOptions): RedisPubSubHealthResult<Key> {
    return this.check('liveness', key, options);
  }

  /** The three checks behind one method. */
  check<const Key extends string = typeof DEFAULT_KEY>(
    kind: HealthCheckKind,
    key: Key = DEFAULT_KEY as Key,
    options: RedisPubSubCheckOptions = {},
  ): RedisPubSubHealthResult<Key> {
    try {
      const data = this.evaluate(kind, options);
      const session = this.health.check(key);
      if (data.status === 'up') return session.up(data.data);
      if (data.status === 'degraded') return session.degraded(data.data);
      return session.down(data.data);
    } catch (error) {
      const message = `health check failed: ${redact(errorText(error))}`;
      return { [key]: { status: 'down', message, transports: {} } } as RedisPubSubHealthResult<Key>;
    }
  }

  private evaluate(kind: HealthCheckKind, options: RedisPubSubCheckOptions): { status: HealthStatus; data: RedisPubSubHealthData } {
    const { names, ...overrides } = options;
    const problem = validate(overrides) ?? (names !== undefined && !Array.isArray(names) ? 'names must be an array of strings' : undefined);
    if (problem) return { status: 'down', data: { message: `invalid health check options: ${problem}`, transports: {} } };
    const thresholds: HealthThresholds = { ...this.defaults, ...stripUndefined(overrides) };
    const now = Date.now();

    const watched = this.watched(names);
    // A Map, then fromEntries: any name (even "__proto__") becomes a plain own property.
    const entries = new Map<string, TransportHealth | UnavailableTransport>();
    const statuses: HealthStatus[] = [];
    const summary: string[] = [];
    const put = (name: string, entry: TransportHealth | UnavailableTransport) => {
      let label = name;
      for (let n = 2; entries.has(label); n++) label = `${name}#${n}`;
      entries.set(label, entry);
      statuses.push(entry.status);
      if (entry.status !== 'up') summary.push(`${label} ${entry.status}: ${entry.reasons[0] ?? 'unknown'}`);
    };

    for (const { name, transport, registered } of watched) {
      if (!transport) {
        put(name, {
          status: 'down',
          reasons: [
            `no running server or client named "${name}": not started yet (a client starts on its first connect(), emit() or send()) or closed`,
          ],
        });
        continue;
      }
      let entry: TransportHealth | UnavailableTransport;
      try {
        const stats = { ...transport.getStats() };
        if (!registered && stats.state !== 'closed') stats.state = 'closed';
        entry = assessTransport(stats, kind, thresholds, now);
      } catch (error) {
        entry = { status: 'down', reasons: [`could not read its state: ${redact(errorText(error))}`] };
      }
      put(name, entry);
    }

    const transports = Object.fromEntries(entries);
    if (watched.length === 0) {
      const message =
        names === undefined
          ? 'no RedisPubSubServer or RedisPubSubClient is running in this process: nothing to watch'
          : 'the names option is empty: nothing to watch';
      return { status: 'down', data: { message, transports } };
    }
    const status = worstStatus(statuses);
    const count = statuses.length;
    const message =
      status === 'up'
        ? `${count} transport${count === 1 ? '' : 's'} up`
        : summary.join('; ');
    return { status, data: { message, transports } };
  }

  /** The instances to assess: running ones, plus closed ones the registry remembers (not replaced since). */
  private watched(names: string[] | undefined): Watched[] {
    const all: Watched[] = [
      ...transportRegistry.list().map((transport) => ({ name: transport.name, transport, registered: true })),
      ...transportRegistry.closed().map((transport) => ({ name: transport.name, transport, registered: false })),
    ];
    if (names === undefined) return all;
    const out: Watched[] = [];
    for (const name of new Set(names)) {
      const matches = all.filter((entry) => entry.name === name);
      if (matches.length === 0) out.push({ name, registered: false });
      else out.push(...matches);
    }
    return out;
  }
}

interface Watched {
  name: string;
  transport?: MonitoredTransport;
  registered: boolean;
}

function stripUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}

function validate(options: RedisPubSubHealthOptions): string | undefined {
  for (const field of ['gracePeriodMs', 'livenessTimeoutMs'] as const) {
    const value = options[field];
    if (value !== undefined && !(typeof value === 'number' && value >= 0 && Number.isFinite(value))) {
      return `${field} must be a finite number >= 0, got ${String(value)}`;
    }
  }
  const stale = options.lifeSignStaleAfterMs;
  if (stale !== undefined && stale !== false && !(typeof stale === 'number' && stale > 0 && Number.isFinite(stale))) {
    return `lifeSignStaleAfterMs must be a positive number or false, got ${String(stale)}`;
  }
  return undefined;
}
