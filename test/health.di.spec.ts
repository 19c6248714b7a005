import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, EventPattern } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, RedisPubSubServer } from '../lib/index.js';
import { RedisPubSubHealthIndicator, RedisPubSubHealthModule, type RedisPubSubHealthData } from '../lib/health/index.js';
import { startRedis, stopAllRedis, type RedisServerHandle } from './harness/redis.js';
import { CaptureLogger } from './support/capture-logger.js';

const data = (result: Record<string, unknown>) => result['redis-pubsub'] as RedisPubSubHealthData & { status: string };

describe('zero glue: the indicator finds instances however Nest created them', () => {
  let redis: RedisServerHandle;
  let app: INestMicroservice | undefined;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  afterAll(async () => {
    await stopAllRedis();
  });

  it('createMicroservice + ClientsModule: both watched, closed ones reported down after app.close()', async () => {
    @Controller()
    class Handlers {
      @EventPattern<string>('di.event')
      handle(): void {}
    }
    @Module({
      imports: [
        RedisPubSubHealthModule.forRoot({ gracePeriodMs: 1_000 }),
        ClientsModule.register([{ name: 'DI_CLIENT', customClass: RedisPubSubClient, options: { url: redis.url, name: 'di-client' } }]),
      ],
      controllers: [Handlers],
    })
    class MicroserviceModule {}

    app = await NestFactory.createMicroservice(MicroserviceModule, {
      strategy: new RedisPubSubServer({ url: redis.url, name: 'di-server' }),
      logger: new CaptureLogger(),
    });
    await app.listen();
    const indicator = app.get(RedisPubSubHealthIndicator);

    // The server registered itself in listen(); the client has not been used yet.
    const before = data(indicator.isReady());
    expect(before.status).toBe('up');
    expect(Object.keys(before.transports)).toEqual(['di-server']);
    const named = data(indicator.isReady('redis-pubsub', { names: ['di-server', 'di-client'] }));
    expect(named.status).toBe('down');
    expect(named.transports['di-client']).toMatchObject({ status: 'down' });

    // First use starts (and registers) the client.
    await app.get<RedisPubSubClient>('DI_CLIENT').connect();
    const after = data(indicator.isReady('redis-pubsub', { names: ['di-server', 'di-client'] }));
    expect(after.status).toBe('up');
    expect(after.transports['di-client']).toMatchObject({ status: 'up', kind: 'client' });

    await app.close();
    app = undefined;
    const closed = data(indicator.isHealthy());
    expect(closed.status).toBe('down');
    expect(closed.transports['di-server']).toMatchObject({ status: 'down', state: 'closed' });
    expect(closed.transports['di-client']).toMatchObject({ status: 'down', state: 'closed' });
  });

  it('an instance closed before any check ran stays down (the README promise), until one of its name replaces it', async () => {
    const client = new RedisPubSubClient({ url: redis.url, name: 'closed-early' });
    await firstValueFrom(client.emit('nobody.listens', 1), { defaultValue: undefined });
    await client.close();
    // The indicator is created, and checks, only after the close.
    const indicator = new RedisPubSubHealthIndicator();
    for (const result of [indicator.isHealthy(), indicator.isReady(), indicator.isAlive()]) {
      expect(data(result).status).toBe('down');
      expect(data(result).transports['closed-early']).toMatchObject({ status: 'down', state: 'closed' });
    }
    const replacement = new RedisPubSubClient({ url: redis.url, name: 'closed-early' });
    try {
      await replacement.connect();
      expect(data(indicator.isReady('redis-pubsub', { names: ['closed-early'] }))).toMatchObject({
        status: 'up',
        transports: { 'closed-early': { status: 'up', state: 'connected' } },
      });
    } finally {
      await replacement.close();
    }
  });
});

describe('entry points', () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

  /** Every file reachable from `entry` through relative imports, and every package it imports. */
  function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
    const files = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (files.has(file)) return;
      files.add(file);
      const source = readFileSync(file, 'utf8');
      for (const match of source.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g)) {
        const specifier = match[1] ?? match[2] ?? match[3]!;
        if (specifier.startsWith('.')) visit(join(dirname(file), specifier.replace(/\.js$/, '.ts')));
        else packages.add(specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/'));
      }
    };
    visit(join(root, entry));
    return { files, packages };
  }

  it('the main entry never loads @nestjs/terminus (an optional peer dependency) nor the health code', () => {
    const { files, packages } = importGraph('lib/index.ts');
    expect(files.size).toBeGreaterThan(5);
    expect(packages).toContain('@nestjs/microservices');
    expect(packages).not.toContain('@nestjs/terminus');
    expect([...files].filter((f) => f.includes(`${join('lib', 'health')}`))).toEqual([]);
  });

  it('the ./health entry is exported by package.json and loads @nestjs/terminus', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(pkg.exports['./health']).toEqual({ types: './dist/lib/health/index.d.ts', default: './dist/lib/health/index.js' });
    expect(importGraph('lib/health/index.ts').packages).toContain('@nestjs/terminus');
  });
});
