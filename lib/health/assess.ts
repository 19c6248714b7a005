import type { ConnectionRole, ConnectionStats } from '../managed-connection.js';
import type { MessageCounters, RedisPubSubStats } from '../pubsub-link.js';
import type { ShardStats } from '../cluster/cluster-stats.js';
import { redact } from '../redact.js';

/** Terminus 12 indicator statuses: `degraded` keeps HTTP 200, any `down` answers 503. */
export type HealthStatus = 'up' | 'degraded' | 'down';

/**
 * - `health`: the general check; recovering within `gracePeriodMs` is `degraded`, beyond it `down`.
 * - `readiness`: strict; `up` only when events can be received right now, otherwise `down`.
 * - `liveness`: lenient; `down` only after `livenessTimeoutMs` without recovery (or when it never will).
 */
export type HealthCheckKind = 'health' | 'readiness' | 'liveness';

export interface HealthThresholds {
  /** `health`: how long reconnecting / resubscribing stays `degraded` before it is `down`. */
  gracePeriodMs: number;
  /** `liveness`: how long the transport may stay unable to recover before liveness fails. */
  livenessTimeoutMs: number;
  /**
   * A connected connection whose last inbound byte is older than this is stale.
   * Unset: derived per instance from its heartbeat settings (see `lifeSignStaleAfter`).
   * `false`: never stale.
   */
  lifeSignStaleAfterMs?: number | false;
}

export const DEFAULT_HEALTH_THRESHOLDS = {
  gracePeriodMs: 10_000,
  livenessTimeoutMs: 300_000,
} as const satisfies HealthThresholds;

/** What a person on call reads about one connection. Ages are in ms before the check. */
export interface ConnectionHealth {
  state: ConnectionStats['state'];
  /** Time since this connection last changed state. */
  stateAgeMs: number;
  /** Time since the last byte received from Redis (any byte is a life sign). */
  lastLifeSignAgeMs: number | null;
  /** Round trip of the last answered heartbeat PING. */
  heartbeatRttMs: number | null;
  /** Successful reconnects since start. */
  reconnects: number;
  /** Consecutive failed attempts of the current outage (0 when connected). */
  attempt: number;
  lastError: string | null;
  lastErrorAgeMs: number | null;
}

/** What a person on call reads about one server or client. */
export interface TransportHealth {
  status: HealthStatus;
  kind: 'server' | 'client';
  state: RedisPubSubStats['state'];
  /** Time since the transport last changed state. */
  stateAgeMs: number;
  /** How long the transport has been unhealthy (absent when it is not). */
  unhealthyForMs?: number;
  /** Why the status is not `up`, the verdict first (empty when up). */
  reasons: string[];
  subscriptions: { expected: number; confirmed: number; missing: string[] };
  connections: Record<ConnectionRole, ConnectionHealth>;
  messages: MessageCounters;
  /** Clients only. */
  pending?: { requests: number; events: number };
  /** Redis Cluster only: each shard in use (its primary, the slots it serves, its state and what it misses). */
  shards?: ShardStats[];
  /** Servers only: the last losses (gaps, unrecoverable durable ranges), newest last; a loss alone never makes a transport down. */
  recentLosses?: Array<{ kind: 'gap' | 'unrecoverable'; channel: string; publisher?: string; missed: number; ageMs: number }>;
  /** The limits this verdict was measured against. */
  limits: {
    /** null: staleness not checked (heartbeat off). */
    lifeSignStaleAfterMs: number | null;
    gracePeriodMs?: number;
    livenessTimeoutMs?: number;
  };
}

/**
 * Age after which a connected connection's last life sign is stale.
 * A healthy connection receives a PONG every `intervalMs`; the heartbeat itself tears a silent
 * connection down at most `intervalMs + timeoutMs` after its last byte. One more `intervalMs`
 * of margin (timer jitter, verdicts waiting for pending I/O) gives `2 * intervalMs + timeoutMs`:
 * a connection still "connected" beyond that means the heartbeat is not doing its job.
 * `null` (never stale) when heartbeats are off and no explicit value is given.
 */
export function lifeSignStaleAfter(heartbeat: RedisPubSubStats['heartbeat'], override?: number | false): number | null {
  if (override === false) return null;
  if (override !== undefined) return override;
  if (!heartbeat) return null;
  return 2 * heartbeat.intervalMs + heartbeat.timeoutMs;
}

type ProblemKind =
  /** Will never recover on its own (closed, gave up): `down` everywhere. */
  | 'fatal'
  /** Contradicts "connected" (stale life sign, subscriptions missing while connected): `down` for health/readiness. */
  | 'broken'
  /** Reconnecting / resubscribing: `degraded` within the grace period. */
  | 'recovering';

interface Problem {
  kind: ProblemKind;
  reason: string;
  /** Epoch ms at which this problem started. */
  since: number;
}

const age = (now: number, at: number): number => Math.max(0, now - at);
const MAX_LISTED = 5;

function listMissing(missing: string[], total: number): string {
  const shown = missing.slice(0, MAX_LISTED).join(', ');
  const more = total - Math.min(missing.length, MAX_LISTED);
  return more > 0 ? `${shown} and ${more} more` : shown;
}

/**
 * The pure mapping: one transport's stats, the thresholds and the current time
 * give a status, the reasons for it and the details shown to whoever is on call.
 * Boundaries are inclusive on the healthy side: an age exactly at a threshold still passes,
 * 1 ms past it does not.
 */
export function assessTransport(
  stats: RedisPubSubStats,
  check: HealthCheckKind,
  thresholds: HealthThresholds,
  now: number,
): TransportHealth {
  const staleAfter = lifeSignStaleAfter(stats.heartbeat, thresholds.lifeSignStaleAfterMs);
  const problems: Problem[] = [];
  const subs = stats.subscriptions;

  if (stats.state === 'closed') {
    problems.push({ kind: 'fatal', reason: 'closed: close() was called, nothing is received any more', since: stats.stateChangedAt });
  } else if (stats.state === 'disconnected') {
    problems.push({
      kind: 'fatal',
      reason: 'disconnected: gave up reconnecting (retry.maxAttempts or retryStrategy); only a restart recovers it',
      since: stats.stateChangedAt,
    });
  } else {
    if (stats.state !== 'connected') {
      problems.push({ kind: 'recovering', reason: `${stats.state} for ${age(now, stats.stateChangedAt)} ms`, since: stats.stateChangedAt });
    }
    for (const role of ['subscriber', 'publisher'] as const) {
      const connection = stats.connections[role];
      if (connection.state === 'connected') {
        if (staleAfter === null) continue;
        const last = connection.lastLifeSignAt ?? connection.stateChangedAt;
        const silentMs = age(now, last);
        if (silentMs > staleAfter) {
          problems.push({
            kind: 'broken',
            reason: `${role} connection: no life sign for ${silentMs} ms (stale after ${staleAfter} ms) although it reports connected`,
            since: last + staleAfter,
          });
        }
      } else if (connection.state === 'closed' || connection.state === 'disconnected') {
        problems.push({ kind: 'fatal', reason: `${role} connection ${connection.state}`, since: connection.stateChangedAt });
      } else if (connection.state === 'suspect') {
        // Silent or failing the probe: kept open (it may still deliver) while a replacement is prepared.
        problems.push({
          kind: 'recovering',
          reason: `${role} connection suspect for ${age(now, connection.stateChangedAt)} ms (${connection.lastError ?? 'silent'}): a replacement is being prepared beside it`,
          since: connection.stateChangedAt,
        });
      } else {
        const attempt = connection.attempt > 0 ? `, attempt ${connection.attempt}` : '';
        problems.push({
          kind: 'recovering',
          reason: `${role} connection ${connection.state} for ${age(now, connection.stateChangedAt)} ms${attempt}`,
          since: connection.stateChangedAt,
        });
      }
    }
    for (const shard of stats.cluster?.shards ?? []) {
      if (shard.state === 'connected') continue;
      const connections = `subscriber ${shard.connections.subscriber.state}, publisher ${shard.connections.publisher.state}`;
      problems.push({ kind: 'recovering', reason: `shard ${shard.node} (slots ${shard.slots}) ${shard.state}: ${connections}`, since: stats.stateChangedAt });
    }
    if (subs.confirmed < subs.expected) {
      const missing = `${subs.confirmed}/${subs.expected} subscriptions confirmed, missing: ${listMissing(subs.missing, subs.expected - subs.confirmed)}`;
      if (stats.state === 'connected') {
        problems.push({ kind: 'broken', reason: `connected but only ${missing}`, since: stats.stateChangedAt });
      } else {
        problems.push({ kind: 'recovering', reason: missing, since: stats.stateChangedAt });
      }
    }
  }

  const limits: TransportHealth['limits'] = { lifeSignStaleAfterMs: staleAfter };
  if (check === 'health') limits.gracePeriodMs = thresholds.gracePeriodMs;
  if (check === 'liveness') limits.livenessTimeoutMs = thresholds.livenessTimeoutMs;

  let status: HealthStatus = 'up';
  let unhealthyForMs: number | undefined;
  const reasons = problems.map((p) => p.reason);
  if (problems.length > 0) {
    unhealthyForMs = age(now, Math.min(...problems.map((p) => p.since)));
    const has = (kind: ProblemKind) => problems.some((p) => p.kind === kind);
    if (has('fatal') || check === 'readiness') status = 'down';
    else if (check === 'health') {
      if (has('broken')) status = 'down';
      else if (unhealthyForMs > thresholds.gracePeriodMs) {
        status = 'down';
        reasons.unshift(`not recovered within the grace period of ${thresholds.gracePeriodMs} ms (unhealthy for ${unhealthyForMs} ms)`);
      } else status = 'degraded';
    } else if (unhealthyForMs > thresholds.livenessTimeoutMs) {
      status = 'down';
      reasons.unshift(`unable to recover for ${unhealthyForMs} ms (liveness timeout ${thresholds.livenessTimeoutMs} ms)`);
    } else status = 'degraded';
  }

  const result: TransportHealth = {
    status,
    kind: stats.kind,
    state: stats.state,
    stateAgeMs: age(now, stats.stateChangedAt),
    ...(unhealthyForMs !== undefined ? { unhealthyForMs } : {}),
    reasons: reasons.map((r) => redact(r)),
    subscriptions: { expected: subs.expected, confirmed: subs.confirmed, missing: [...subs.missing] },
    connections: {
      subscriber: connectionHealth(stats.connections.subscriber, now),
      publisher: connectionHealth(stats.connections.publisher, now),
    },
    messages: { ...stats.messages },
    limits,
  };
  if (stats.pending) result.pending = { ...stats.pending };
  if (stats.cluster) {
    result.shards = stats.cluster.shards.map((shard) => ({
      ...shard,
      connections: { subscriber: { ...shard.connections.subscriber }, publisher: { ...shard.connections.publisher } },
      missing: [...shard.missing],
    }));
  }
  if (stats.delivery) result.recentLosses = stats.delivery.recentLosses.map(({ at, ...loss }) => ({ ...loss, ageMs: age(now, at) }));
  return result;
}

function connectionHealth(connection: ConnectionStats, now: number): ConnectionHealth {
  return {
    state: connection.state,
    stateAgeMs: age(now, connection.stateChangedAt),
    lastLifeSignAgeMs: connection.lastLifeSignAt === null ? null : age(now, connection.lastLifeSignAt),
    heartbeatRttMs: connection.heartbeatRttMs,
    reconnects: connection.reconnects,
    attempt: connection.attempt,
    // Already redacted by the library; URL credentials are stripped once more in case an error text carries one.
    lastError: connection.lastError === null ? null : redact(connection.lastError),
    lastErrorAgeMs: connection.lastErrorAt === null ? null : age(now, connection.lastErrorAt),
  };
}

const RANK: Record<HealthStatus, number> = { up: 0, degraded: 1, down: 2 };

/** The worst of several statuses (`up` for none). */
export function worstStatus(statuses: Iterable<HealthStatus>): HealthStatus {
  let worst: HealthStatus = 'up';
  for (const status of statuses) if (RANK[status] > RANK[worst]) worst = status;
  return worst;
}
