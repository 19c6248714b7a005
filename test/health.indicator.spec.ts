import 'reflect-metadata';
import { jest } from '@jest/globals';
import { Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { HealthIndicatorService, TerminusModule } from '@nestjs/terminus';
import { transportRegistry, type MonitoredTransport, type RedisPubSubStats } from '../lib/index.js';
import { RedisPubSubHealthIndicator, RedisPubSubHealthModule, type RedisPubSubHealthData } from '../lib/health/index.js';

/** A transport double: whatever stats the test sets, registered like a running server or client. */
class FakeTransport implements MonitoredTransport {
  stats: RedisPubSubStats;
  throwOnStats?: Error;

  constructor(
    readonly name: string,
    kind: 'server' | 'client' = 'server',
    state: RedisPubSubStats['state'] = 'connected',
  ) {
    const now = Date.now();
    const connection = (role: 'subscriber' | 'publisher') => ({
      role,
      state: state === 'connected' ? ('connected' as const) : ('reconnecting' as const),
      lastLifeSignAt: now,
      heartbeatRttMs: 1,
      reconnects: 0,
      attempt: 0,
      lastError: null,
      lastErrorAt: null,
      stateChangedAt: now,
    });
    this.stats = {
      name,
      kind,
      state,
      stateChangedAt: now,
      heartbeat: { intervalMs: 2_000, timeoutMs: 2_000 },
      connections: { subscriber: connection('subscriber'), publisher: connection('publisher') },
      subscriptions: { expected: 1, confirmed: state === 'connected' ? 1 : 0, missing: state === 'connected' ? [] : ['channel:x'] },
      messages: { received: 0, invalid: 0, handlerErrors: 0, lost: 0, duplicates: 0, dropped: 0 },
    };
  }

  getStats(): RedisPubSubStats {
    if (this.throwOnStats) throw this.throwOnStats;
    return structuredClone(this.stats);
  }

  start(): this {
    transportRegistry.add(this);
    registered.push(this);
    return this;
  }

  /** What close() does to a real instance: state closed, out of the registry. */
  close(): void {
    this.stats.state = 'closed';
    this.stats.connections.subscriber.state = 'closed';
    this.stats.connections.publisher.state = 'closed';
    transportRegistry.markClosed(this);
  }
}

const registered: FakeTransport[] = [];

afterEach(() => {
  for (const transport of registered.splice(0)) transportRegistry.delete(transport);
  jest.restoreAllMocks();
});

const data = (result: Record<string, unknown>, key = 'redis-pubsub') => result[key] as RedisPubSubHealthData & { status: string };

describe('RedisPubSubHealthIndicator: discovery through the registry', () => {
  it('is down with a clear message when nothing is running', () => {
    const result = new RedisPubSubHealthIndicator().isHealthy();
    expect(data(result)).toEqual({
      status: 'down',
      message: 'no RedisPubSubServer or RedisPubSubClient is running in this process: nothing to watch',
      transports: {},
    });
  });

  it('watches every registered instance by default, under the default key', () => {
    new FakeTransport('orders').start();
    new FakeTransport('events', 'client').start();
    const result = new RedisPubSubHealthIndicator().isHealthy();
    expect(Object.keys(result)).toEqual(['redis-pubsub']);
    expect(data(result).status).toBe('up');
    expect(data(result).message).toBe('2 transports up');
    expect(Object.keys(data(result).transports)).toEqual(['orders', 'events']);
    expect(data(result).transports.events).toMatchObject({ status: 'up', kind: 'client' });
  });

  it('uses the key it is given', () => {
    new FakeTransport('orders').start();
    expect(Object.keys(new RedisPubSubHealthIndicator().isReady('bus'))).toEqual(['bus']);
  });

  it('the worst instance decides, and the message names the culprit', () => {
    new FakeTransport('orders').start();
    new FakeTransport('billing', 'server', 'reconnecting').start();
    const result = data(new RedisPubSubHealthIndicator().isHealthy());
    expect(result.status).toBe('degraded');
    expect(result.message).toMatch(/^billing degraded: reconnecting for \d+ ms$/);
    expect(data(new RedisPubSubHealthIndicator().isReady()).status).toBe('down');
  });

  it('labels instances sharing a name apart', () => {
    new FakeTransport('orders').start();
    new FakeTransport('orders').start();
    expect(Object.keys(data(new RedisPubSubHealthIndicator().isHealthy()).transports)).toEqual(['orders', 'orders#2']);
  });

  it('any name is a plain key, even one that looks like an Object property', () => {
    new FakeTransport('constructor').start();
    new FakeTransport('__proto__').start();
    const transports = data(new RedisPubSubHealthIndicator().isHealthy()).transports;
    expect(Object.keys(transports)).toEqual(['constructor', '__proto__']);
    expect(JSON.parse(JSON.stringify(transports)).__proto__.status).toBe('up');
  });
});

describe('RedisPubSubHealthIndicator: names filter', () => {
  it('watches only the named instances', () => {
    new FakeTransport('orders').start();
    new FakeTransport('billing', 'server', 'reconnecting').start();
    const result = data(new RedisPubSubHealthIndicator().isReady('redis-pubsub', { names: ['orders'] }));
    expect(result.status).toBe('up');
    expect(Object.keys(result.transports)).toEqual(['orders']);
  });

  it('a named instance that is not running is down, and says why it may be missing', () => {
    new FakeTransport('orders').start();
    const result = data(new RedisPubSubHealthIndicator().isHealthy('redis-pubsub', { names: ['orders', 'sample-client'] }));
    expect(result.status).toBe('down');
    expect(result.transports['sample-client']).toEqual({
      status: 'down',
      reasons: [
        'no running server or client named "sample-client": not started yet (a client starts on its first connect(), emit() or send()) or closed',
      ],
    });
    expect(result.message).toMatch(/^sample-client down: no running server or client named "sample-client"/);
  });

  it('an empty names list watches nothing and is down', () => {
    new FakeTransport('orders').start();
    expect(data(new RedisPubSubHealthIndicator().isHealthy('k', { names: [] }), 'k')).toEqual({
      status: 'down',
      message: 'the names option is empty: nothing to watch',
      transports: {},
    });
  });
});

describe('RedisPubSubHealthIndicator: closed instances', () => {
  it('remembers an instance it saw: once closed (and gone from the registry) it is down, in every check', () => {
    const indicator = new RedisPubSubHealthIndicator();
    const orders = new FakeTransport('orders').start();
    new FakeTransport('billing').start();
    expect(data(indicator.isHealthy()).status).toBe('up');
    orders.close();
    for (const result of [indicator.isHealthy(), indicator.isReady(), indicator.isAlive()]) {
      expect(data(result).status).toBe('down');
      expect(data(result).transports.orders).toMatchObject({ status: 'down', state: 'closed' });
    }
  });

  it('an instance closed before any check ran is down too, with or without an indicator at the time', () => {
    const orders = new FakeTransport('orders').start();
    new FakeTransport('billing').start();
    orders.close();
    const indicator = new RedisPubSubHealthIndicator();
    for (const result of [indicator.isHealthy(), indicator.isReady(), indicator.isAlive()]) {
      expect(data(result).status).toBe('down');
      expect(data(result).transports.orders).toMatchObject({ status: 'down', state: 'closed' });
      expect(data(result).transports.billing).toMatchObject({ status: 'up' });
    }
    expect(data(indicator.isReady('redis-pubsub', { names: ['orders'] })).transports.orders).toMatchObject({ state: 'closed' });
  });

  it('reports a closed instance as closed even if its stats do not say so', () => {
    const indicator = new RedisPubSubHealthIndicator();
    const orders = new FakeTransport('orders').start();
    transportRegistry.markClosed(orders);
    expect(data(indicator.isHealthy()).transports.orders).toMatchObject({ status: 'down', state: 'closed' });
  });

  it('an instance closed while a running one of the same name and kind replaces it is not reported', () => {
    const indicator = new RedisPubSubHealthIndicator();
    const old = new FakeTransport('events', 'client').start();
    new FakeTransport('events', 'client').start();
    old.close();
    const result = data(indicator.isHealthy());
    expect(result.status).toBe('up');
    expect(Object.keys(result.transports)).toEqual(['events']);
  });

  it('remembers the last 256 closed instances, forgetting the oldest first', () => {
    const indicator = new RedisPubSubHealthIndicator();
    for (let i = 0; i < 300; i++) new FakeTransport(`t${i}`).start().close();
    const names = Object.keys(data(indicator.isHealthy()).transports);
    expect(names).toHaveLength(256);
    expect(names[0]).toBe('t44');
    expect(names[255]).toBe('t299');
  });

  it('forgets a closed instance once a new one of the same name and kind runs (a replaced client)', () => {
    const indicator = new RedisPubSubHealthIndicator();
    const first = new FakeTransport('events', 'client').start();
    indicator.isHealthy();
    first.close();
    expect(data(indicator.isHealthy()).status).toBe('down');
    new FakeTransport('events', 'client').start();
    const result = data(indicator.isHealthy());
    expect(result.status).toBe('up');
    expect(Object.keys(result.transports)).toEqual(['events']);
  });
});

describe('RedisPubSubHealthIndicator: never throws', () => {
  it('an instance whose getStats() throws is down; the others are still reported', () => {
    new FakeTransport('orders').start();
    const broken = new FakeTransport('broken').start();
    broken.throwOnStats = new Error('boom at redis://user:pa55w0rd@host:6379');
    const result = data(new RedisPubSubHealthIndicator().isHealthy());
    expect(result.status).toBe('down');
    expect(result.transports.orders).toMatchObject({ status: 'up' });
    expect(result.transports.broken).toEqual({ status: 'down', reasons: ['could not read its state: boom at redis://user:***@host:6379'] });
  });

  it('an unexpected failure anywhere becomes down with a message', () => {
    jest.spyOn(transportRegistry, 'list').mockImplementation(() => {
      throw new Error('registry exploded');
    });
    let result: Record<string, unknown> | undefined;
    expect(() => (result = new RedisPubSubHealthIndicator().isAlive('bus'))).not.toThrow();
    expect(result).toEqual({ bus: { status: 'down', message: 'health check failed: registry exploded', transports: {} } });
  });

  it('invalid per-call options are down, not a throw', () => {
    new FakeTransport('orders').start();
    const result = data(new RedisPubSubHealthIndicator().isHealthy('redis-pubsub', { gracePeriodMs: -1 }));
    expect(result).toMatchObject({ status: 'down', message: 'invalid health check options: gracePeriodMs must be a finite number >= 0, got -1' });
    expect(data(new RedisPubSubHealthIndicator().isHealthy('redis-pubsub', { names: 'orders' as never })).status).toBe('down');
  });

  it('invalid module options fail at start-up instead', () => {
    expect(() => new RedisPubSubHealthIndicator({ livenessTimeoutMs: Number.NaN })).toThrow(/livenessTimeoutMs must be a finite number/);
    expect(() => new RedisPubSubHealthIndicator({ lifeSignStaleAfterMs: 0 })).toThrow(/lifeSignStaleAfterMs must be a positive number or false/);
  });
});

describe('RedisPubSubHealthIndicator: thresholds', () => {
  /** A transport reconnecting for 2 s. */
  const reconnecting2s = () => {
    const t = new FakeTransport('orders', 'server', 'reconnecting').start();
    t.stats.stateChangedAt = Date.now() - 2_000;
    return t;
  };

  it('defaults: 10 s grace, so 2 s of reconnecting is degraded', () => {
    reconnecting2s();
    expect(data(new RedisPubSubHealthIndicator().isHealthy()).status).toBe('degraded');
  });

  it('module options set the defaults, per-call options override them', () => {
    reconnecting2s();
    const indicator = new RedisPubSubHealthIndicator({ gracePeriodMs: 1_000, livenessTimeoutMs: 1_500 });
    expect(data(indicator.isHealthy()).status).toBe('down');
    expect(data(indicator.isAlive()).status).toBe('down');
    expect(data(indicator.isHealthy('redis-pubsub', { gracePeriodMs: 5_000 })).status).toBe('degraded');
    expect(data(indicator.isAlive('redis-pubsub', { livenessTimeoutMs: 60_000 })).status).toBe('degraded');
  });
});

describe('RedisPubSubHealthModule', () => {
  it('provides the indicator with the defaults when imported as is', async () => {
    @Module({ imports: [RedisPubSubHealthModule] })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const reconnecting = new FakeTransport('orders', 'server', 'reconnecting').start();
    reconnecting.stats.stateChangedAt = Date.now() - 9_000;
    expect(data(moduleRef.get(RedisPubSubHealthIndicator).isHealthy()).status).toBe('degraded');
    await moduleRef.close();
  });

  it('forRoot() sets the thresholds; isGlobal makes the indicator injectable everywhere', async () => {
    @Module({ providers: [{ provide: 'CONSUMER', useFactory: (i: RedisPubSubHealthIndicator) => i, inject: [RedisPubSubHealthIndicator] }] })
    class FeatureModule {}
    @Module({ imports: [RedisPubSubHealthModule.forRoot({ gracePeriodMs: 1_000, isGlobal: true }), FeatureModule] })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const reconnecting = new FakeTransport('orders', 'server', 'reconnecting').start();
    reconnecting.stats.stateChangedAt = Date.now() - 2_000;
    const indicator = moduleRef.get<RedisPubSubHealthIndicator>('CONSUMER');
    expect(indicator).toBeInstanceOf(RedisPubSubHealthIndicator);
    expect(data(indicator.isHealthy()).status).toBe('down');
    await moduleRef.close();
  });

  it('uses Terminus\'s HealthIndicatorService when it is in scope', async () => {
    @Module({ imports: [TerminusModule], providers: [RedisPubSubHealthIndicator] })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const service = moduleRef.get(HealthIndicatorService);
    const spy = jest.spyOn(service, 'check');
    new FakeTransport('orders').start();
    expect(data(moduleRef.get(RedisPubSubHealthIndicator).isHealthy()).status).toBe('up');
    expect(spy).toHaveBeenCalledWith('redis-pubsub');
    await moduleRef.close();
  });
});
