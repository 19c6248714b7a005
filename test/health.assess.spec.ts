import {
  assessTransport,
  lifeSignStaleAfter,
  worstStatus,
  DEFAULT_HEALTH_THRESHOLDS,
  type HealthCheckKind,
  type HealthThresholds,
} from '../lib/health/index.js';
import type { ConnectionStats, RedisPubSubStats } from '../lib/index.js';

/** A fixed "now"; every time in the fixtures is relative to it. */
const NOW = 1_700_000_000_000;
const HB = { intervalMs: 200, timeoutMs: 300 };
/** 2 * 200 + 300 */
const STALE = 700;
const T: HealthThresholds = { gracePeriodMs: 1_000, livenessTimeoutMs: 5_000 };

function conn(role: 'subscriber' | 'publisher', over: Partial<ConnectionStats> = {}): ConnectionStats {
  return {
    role,
    state: 'connected',
    lastLifeSignAt: NOW - 50,
    heartbeatRttMs: 1,
    reconnects: 0,
    attempt: 0,
    lastError: null,
    lastErrorAt: null,
    stateChangedAt: NOW - 60_000,
    ...over,
  };
}

type StatsOver = Partial<Omit<RedisPubSubStats, 'connections'>> & {
  subscriber?: Partial<ConnectionStats>;
  publisher?: Partial<ConnectionStats>;
};

function stats(over: StatsOver = {}): RedisPubSubStats {
  const { subscriber, publisher, ...rest } = over;
  return {
    name: 'orders',
    kind: 'server',
    state: 'connected',
    stateChangedAt: NOW - 60_000,
    heartbeat: HB,
    connections: { subscriber: conn('subscriber', subscriber), publisher: conn('publisher', publisher) },
    subscriptions: { expected: 3, confirmed: 3, missing: [] },
    messages: { received: 10, invalid: 0, handlerErrors: 0, lost: 0, duplicates: 0, dropped: 0 },
    ...rest,
  };
}

const assess = (s: RedisPubSubStats, check: HealthCheckKind = 'health', thresholds: HealthThresholds = T) => assessTransport(s, check, thresholds, NOW);
const status = (s: RedisPubSubStats, check: HealthCheckKind = 'health', thresholds: HealthThresholds = T) => assess(s, check, thresholds).status;

/** Reconnecting since `ms` before NOW: the publisher lost, the subscriber fine. */
function reconnectingFor(ms: number): RedisPubSubStats {
  return stats({
    state: 'reconnecting',
    stateChangedAt: NOW - ms,
    publisher: { state: 'reconnecting', stateChangedAt: NOW - ms, attempt: 3, lastError: 'connect ECONNREFUSED 127.0.0.1:6379', lastErrorAt: NOW - 20 },
  });
}

describe('lifeSignStaleAfter', () => {
  it('is 2 * intervalMs + timeoutMs: one heartbeat round of margin after the heartbeat itself must have reacted', () => {
    expect(lifeSignStaleAfter(HB)).toBe(700);
    expect(lifeSignStaleAfter({ intervalMs: 2_000, timeoutMs: 2_000 })).toBe(6_000);
  });

  it('is null (never stale) without heartbeats, unless a value is given', () => {
    expect(lifeSignStaleAfter(false)).toBeNull();
    expect(lifeSignStaleAfter(false, 5_000)).toBe(5_000);
  });

  it('takes an explicit value or false over the derived one', () => {
    expect(lifeSignStaleAfter(HB, 1_234)).toBe(1_234);
    expect(lifeSignStaleAfter(HB, false)).toBeNull();
  });
});

describe('assessTransport: healthy', () => {
  it.each<HealthCheckKind>(['health', 'readiness', 'liveness'])('%s: up when connected, fresh and fully subscribed', (check) => {
    const result = assess(stats(), check);
    expect(result.status).toBe('up');
    expect(result.reasons).toEqual([]);
    expect(result.unhealthyForMs).toBeUndefined();
  });

  it('reports ages, not timestamps, and the limits it used', () => {
    const result = assess(stats({ publisher: { lastError: 'old failure', lastErrorAt: NOW - 30_000, reconnects: 2 } }));
    expect(result).toMatchObject({
      kind: 'server',
      state: 'connected',
      stateAgeMs: 60_000,
      subscriptions: { expected: 3, confirmed: 3, missing: [] },
      messages: { received: 10, invalid: 0, handlerErrors: 0, lost: 0, duplicates: 0, dropped: 0 },
      limits: { lifeSignStaleAfterMs: STALE, gracePeriodMs: 1_000 },
    });
    expect(result.connections.publisher).toEqual({
      state: 'connected',
      stateAgeMs: 60_000,
      lastLifeSignAgeMs: 50,
      heartbeatRttMs: 1,
      reconnects: 2,
      attempt: 0,
      lastError: 'old failure',
      lastErrorAgeMs: 30_000,
    });
    expect(assess(stats(), 'liveness').limits).toEqual({ lifeSignStaleAfterMs: STALE, livenessTimeoutMs: 5_000 });
    expect(assess(stats(), 'readiness').limits).toEqual({ lifeSignStaleAfterMs: STALE });
  });

  it('copies a client\'s pending counters', () => {
    expect(assess(stats({ kind: 'client', pending: { requests: 2, events: 5 } })).pending).toEqual({ requests: 2, events: 5 });
    expect(assess(stats()).pending).toBeUndefined();
  });

  it('never reports negative ages when a timestamp is in the future (clock step)', () => {
    const result = assess(stats({ stateChangedAt: NOW + 5_000, subscriber: { lastLifeSignAt: NOW + 100 } }));
    expect(result.status).toBe('up');
    expect(result.stateAgeMs).toBe(0);
    expect(result.connections.subscriber.lastLifeSignAgeMs).toBe(0);
  });
});

describe('assessTransport: life sign staleness', () => {
  const silentFor = (ms: number, role: 'subscriber' | 'publisher' = 'subscriber') => stats({ [role]: { lastLifeSignAt: NOW - ms } });

  it.each(['subscriber', 'publisher'] as const)('%s: fresh exactly at the threshold, down 1 ms past it (health and readiness)', (role) => {
    expect(status(silentFor(STALE, role))).toBe('up');
    expect(status(silentFor(STALE + 1, role))).toBe('down');
    expect(status(silentFor(STALE, role), 'readiness')).toBe('up');
    expect(status(silentFor(STALE + 1, role), 'readiness')).toBe('down');
  });

  it('says which connection is silent, for how long, and against which limit', () => {
    const result = assess(silentFor(STALE + 1));
    expect(result.reasons).toEqual([
      'subscriber connection: no life sign for 701 ms (stale after 700 ms) although it reports connected',
    ]);
    expect(result.unhealthyForMs).toBe(1);
  });

  it('liveness: degraded while stale, down only once stale for longer than livenessTimeoutMs', () => {
    expect(status(silentFor(STALE + 1), 'liveness')).toBe('degraded');
    expect(status(silentFor(STALE + T.livenessTimeoutMs), 'liveness')).toBe('degraded');
    expect(status(silentFor(STALE + T.livenessTimeoutMs + 1), 'liveness')).toBe('down');
  });

  it('is not checked without heartbeats', () => {
    const s = stats({ heartbeat: false, subscriber: { lastLifeSignAt: NOW - 3_600_000 } });
    expect(status(s)).toBe('up');
    expect(assess(s).limits.lifeSignStaleAfterMs).toBeNull();
  });

  it('follows an explicit lifeSignStaleAfterMs, or none with false', () => {
    expect(status(silentFor(2_000), 'health', { ...T, lifeSignStaleAfterMs: 2_000 })).toBe('up');
    expect(status(silentFor(2_001), 'health', { ...T, lifeSignStaleAfterMs: 2_000 })).toBe('down');
    expect(status(silentFor(3_600_000), 'health', { ...T, lifeSignStaleAfterMs: false })).toBe('up');
  });

  it('only applies to connected connections (a reconnecting one is judged by its state)', () => {
    const s = reconnectingFor(10);
    s.connections.publisher.lastLifeSignAt = NOW - 60_000;
    expect(status(s)).toBe('degraded');
  });

  it('measures from the connection\'s state change when it never had a life sign', () => {
    expect(status(stats({ subscriber: { lastLifeSignAt: null, stateChangedAt: NOW - STALE } }))).toBe('up');
    expect(status(stats({ subscriber: { lastLifeSignAt: null, stateChangedAt: NOW - STALE - 1 } }))).toBe('down');
  });
});

describe('assessTransport: reconnecting and the grace period', () => {
  it('health: degraded from the first ms, still degraded exactly at gracePeriodMs, down 1 ms past it', () => {
    expect(status(reconnectingFor(0))).toBe('degraded');
    expect(status(reconnectingFor(T.gracePeriodMs))).toBe('degraded');
    expect(status(reconnectingFor(T.gracePeriodMs + 1))).toBe('down');
  });

  it('readiness: down at once, no grace', () => {
    expect(status(reconnectingFor(0), 'readiness')).toBe('down');
  });

  it('liveness: degraded up to livenessTimeoutMs inclusive, down 1 ms past it', () => {
    expect(status(reconnectingFor(0), 'liveness')).toBe('degraded');
    expect(status(reconnectingFor(T.livenessTimeoutMs), 'liveness')).toBe('degraded');
    expect(status(reconnectingFor(T.livenessTimeoutMs + 1), 'liveness')).toBe('down');
  });

  it('explains the outage: state and duration, the connection and its attempt, the grace period', () => {
    const result = assess(reconnectingFor(T.gracePeriodMs + 1));
    expect(result.unhealthyForMs).toBe(1_001);
    expect(result.reasons).toEqual([
      'not recovered within the grace period of 1000 ms (unhealthy for 1001 ms)',
      'reconnecting for 1001 ms',
      'publisher connection reconnecting for 1001 ms, attempt 3',
    ]);
    expect(result.connections.publisher.lastError).toBe('connect ECONNREFUSED 127.0.0.1:6379');
    expect(result.connections.publisher.lastErrorAgeMs).toBe(20);
    expect(assess(reconnectingFor(T.livenessTimeoutMs + 1), 'liveness').reasons[0]).toBe(
      'unable to recover for 5001 ms (liveness timeout 5000 ms)',
    );
  });

  it('measures the outage from its earliest start, not from the latest state change', () => {
    // The transport has been reconnecting for 1 500 ms; the publisher's current attempt began 10 ms ago.
    const s = stats({ state: 'reconnecting', stateChangedAt: NOW - 1_500, publisher: { state: 'connecting', stateChangedAt: NOW - 10 } });
    expect(assess(s).unhealthyForMs).toBe(1_500);
    expect(status(s)).toBe('down');
  });

  it('treats the first connection at start-up ("connecting") like a reconnect', () => {
    const s = stats({
      state: 'connecting',
      stateChangedAt: NOW - T.gracePeriodMs,
      subscriber: { state: 'connecting', stateChangedAt: NOW - T.gracePeriodMs, lastLifeSignAt: null },
      publisher: { state: 'connecting', stateChangedAt: NOW - T.gracePeriodMs, lastLifeSignAt: null },
      subscriptions: { expected: 3, confirmed: 0, missing: ['channel:a', 'channel:b', 'pattern:c.*'] },
    });
    expect(status(s)).toBe('degraded');
    expect(status({ ...s, stateChangedAt: NOW - T.gracePeriodMs - 1 })).toBe('down');
    expect(status(s, 'readiness')).toBe('down');
  });

  it('trusts the transport\'s own state: not connected yet although both connections are up and subscribed is not up', () => {
    const s = stats({ state: 'connecting', stateChangedAt: NOW - 100 });
    expect(status(s)).toBe('degraded');
    expect(status(s, 'readiness')).toBe('down');
    expect(assess(s).reasons).toEqual(['connecting for 100 ms']);
  });

  it('uses the library defaults (10 s grace, 5 min liveness) when given DEFAULT_HEALTH_THRESHOLDS', () => {
    expect(status(reconnectingFor(10_000), 'health', DEFAULT_HEALTH_THRESHOLDS)).toBe('degraded');
    expect(status(reconnectingFor(10_001), 'health', DEFAULT_HEALTH_THRESHOLDS)).toBe('down');
    expect(status(reconnectingFor(300_000), 'liveness', DEFAULT_HEALTH_THRESHOLDS)).toBe('degraded');
    expect(status(reconnectingFor(300_001), 'liveness', DEFAULT_HEALTH_THRESHOLDS)).toBe('down');
  });
});

describe('assessTransport: subscriptions', () => {
  const resubscribing = (ms: number) =>
    stats({
      state: 'reconnecting',
      stateChangedAt: NOW - ms,
      subscriptions: { expected: 8, confirmed: 1, missing: ['channel:a', 'channel:b', 'channel:c', 'channel:d', 'channel:e', 'channel:f', 'pattern:g.*'] },
    });

  it('resubscribing (connections up, subscriptions not yet confirmed): degraded within the grace period, down past it', () => {
    expect(status(resubscribing(T.gracePeriodMs))).toBe('degraded');
    expect(status(resubscribing(T.gracePeriodMs + 1))).toBe('down');
    expect(status(resubscribing(0), 'readiness')).toBe('down');
  });

  it('lists what is missing (the first five in the reason, all of them in the details)', () => {
    const result = assess(resubscribing(5));
    expect(result.reasons).toContain('1/8 subscriptions confirmed, missing: channel:a, channel:b, channel:c, channel:d, channel:e and 2 more');
    expect(result.subscriptions.missing).toHaveLength(7);
  });

  it('subscriptions missing while the transport reports connected: down at once for health and readiness', () => {
    const s = stats({ subscriptions: { expected: 3, confirmed: 2, missing: ['channel:orders.created'] } });
    expect(status(s)).toBe('down');
    expect(status(s, 'readiness')).toBe('down');
    expect(assess(s).reasons).toEqual(['connected but only 2/3 subscriptions confirmed, missing: channel:orders.created']);
  });

  it('liveness gives subscriptions missing while connected the liveness timeout too', () => {
    const missing = { expected: 3, confirmed: 2, missing: ['channel:x'] };
    expect(status(stats({ subscriptions: missing, stateChangedAt: NOW - T.livenessTimeoutMs }), 'liveness')).toBe('degraded');
    expect(status(stats({ subscriptions: missing, stateChangedAt: NOW - T.livenessTimeoutMs - 1 }), 'liveness')).toBe('down');
  });

  it('up with zero expected subscriptions (heartbeat off, no handlers)', () => {
    expect(status(stats({ heartbeat: false, subscriptions: { expected: 0, confirmed: 0, missing: [] } }))).toBe('up');
  });
});

describe('assessTransport: never recovers on its own', () => {
  it.each<HealthCheckKind>(['health', 'readiness', 'liveness'])('%s: closed is down at once', (check) => {
    const s = stats({ state: 'closed', stateChangedAt: NOW, subscriber: { state: 'closed' }, publisher: { state: 'closed' } });
    expect(status(s, check)).toBe('down');
    expect(assess(s, check).reasons).toEqual(['closed: close() was called, nothing is received any more']);
  });

  it.each<HealthCheckKind>(['health', 'readiness', 'liveness'])('%s: closed is down while close() still drains (connections up)', (check) => {
    expect(status(stats({ state: 'closed', stateChangedAt: NOW }), check)).toBe('down');
  });

  it.each<HealthCheckKind>(['health', 'readiness', 'liveness'])('%s: disconnected (gave up) is down at once', (check) => {
    const s = stats({ state: 'disconnected', stateChangedAt: NOW, publisher: { state: 'disconnected', stateChangedAt: NOW } });
    expect(status(s, check)).toBe('down');
    expect(assess(s, check).reasons[0]).toMatch(/gave up reconnecting.*only a restart recovers it/);
  });

  it('a connection that gave up is down even while the aggregate still says reconnecting', () => {
    const s = stats({ state: 'reconnecting', stateChangedAt: NOW, publisher: { state: 'disconnected', stateChangedAt: NOW } });
    expect(status(s)).toBe('down');
    expect(status(s, 'liveness')).toBe('down');
  });
});

describe('assessTransport: secrets', () => {
  it('strips URL credentials from errors once more (defence in depth)', () => {
    const s = reconnectingFor(10);
    s.connections.publisher.lastError = 'cannot reach redis://admin:hunter2@cache.internal:6379/0';
    const json = JSON.stringify(assess(s));
    expect(json).not.toContain('hunter2');
    expect(json).toContain('redis://admin:***@cache.internal:6379/0');
  });
});

describe('worstStatus', () => {
  it('down > degraded > up, up for none', () => {
    expect(worstStatus([])).toBe('up');
    expect(worstStatus(['up', 'up'])).toBe('up');
    expect(worstStatus(['up', 'degraded', 'up'])).toBe('degraded');
    expect(worstStatus(['degraded', 'down', 'up'])).toBe('down');
  });
});

describe('recent loss in the details', () => {
  it('lists recent losses with their age and counts, and stays up: a lost event is not a dead transport', () => {
    const s = stats({
      messages: { received: 10, invalid: 0, handlerErrors: 0, lost: 7, duplicates: 1, dropped: 0 },
      delivery: { trackedPositions: 2, recentLosses: [{ kind: 'gap', channel: 'orders.created', publisher: 'p1', missed: 7, at: NOW - 1_500 }] },
    });
    for (const check of ['health', 'readiness', 'liveness'] as const) {
      const result = assess(s, check);
      expect(result.status).toBe('up');
      expect(result.messages).toMatchObject({ lost: 7, duplicates: 1 });
      expect(result.recentLosses).toEqual([{ kind: 'gap', channel: 'orders.created', publisher: 'p1', missed: 7, ageMs: 1_500 }]);
    }
  });
});

describe('a suspect connection (make before break)', () => {
  const suspectFor = (ms: number) =>
    stats({
      state: 'reconnecting',
      stateChangedAt: NOW - ms,
      subscriber: {
        state: 'suspect',
        stateChangedAt: NOW - ms,
        lastLifeSignAt: NOW - ms - 500,
        lastError: 'heartbeat timeout: no data for 500 ms',
        lastErrorAt: NOW - ms,
      },
    });

  it('is degraded with the reason, even once its last life sign is older than lifeSignStaleAfterMs, and down for readiness', () => {
    const result = assess(suspectFor(STALE + 100));
    expect(result.status).toBe('degraded');
    expect(result.reasons).toContainEqual(
      `subscriber connection suspect for ${STALE + 100} ms (heartbeat timeout: no data for 500 ms): a replacement is being prepared beside it`,
    );
    expect(status(suspectFor(STALE + 100), 'readiness')).toBe('down');
  });

  it('is down once it stays suspect beyond the grace period', () => {
    expect(status(suspectFor(T.gracePeriodMs + 1))).toBe('down');
  });
});

describe('Redis Cluster: the shard that is missing is named', () => {
  const shard = (node: string, slots: string, over: Partial<NonNullable<RedisPubSubStats['cluster']>['shards'][number]> = {}) => ({
    node,
    slots,
    state: 'connected' as const,
    connections: { subscriber: { state: 'connected' as const, reconnects: 0, heartbeatRttMs: 1 }, publisher: { state: 'connected' as const, reconnects: 0, heartbeatRttMs: 1 } },
    channels: 1,
    missing: [],
    ...over,
  });

  it('a shard reconnecting: degraded, with its node, slot range and connections in the reasons and the details', () => {
    const down = shard('127.0.0.1:7002', '5461-10922', {
      state: 'reconnecting',
      connections: { subscriber: { state: 'reconnecting', reconnects: 2, heartbeatRttMs: null }, publisher: { state: 'connected', reconnects: 0, heartbeatRttMs: 1 } },
      missing: ['shard:inbound'],
    });
    const result = assess(
      stats({
        state: 'reconnecting',
        stateChangedAt: NOW - 300,
        subscriptions: { expected: 2, confirmed: 1, missing: ['shard:inbound (slot 7000, node 127.0.0.1:7002 (slots 5461-10922))'] },
        cluster: { shards: [shard('127.0.0.1:7001', '0-5460'), down], connections: 4, refreshes: 3, lastRefreshAt: NOW - 100 },
      }),
    );
    expect(result.status).toBe('degraded');
    expect(result.reasons).toContain('shard 127.0.0.1:7002 (slots 5461-10922) reconnecting: subscriber reconnecting, publisher connected');
    expect(result.reasons.join('\n')).toContain('shard:inbound (slot 7000, node 127.0.0.1:7002 (slots 5461-10922))');
    expect(result.shards).toEqual([shard('127.0.0.1:7001', '0-5460'), down]);
  });

  it('every shard connected: up, shards listed', () => {
    const result = assess(stats({ cluster: { shards: [shard('127.0.0.1:7001', '0-16383')], connections: 2, refreshes: 1, lastRefreshAt: NOW } }));
    expect([result.status, result.reasons, result.shards?.length]).toEqual(['up', [], 1]);
  });
});
