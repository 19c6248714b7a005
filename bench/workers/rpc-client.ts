/**
 * Request-response callers: `concurrency` closed-loop callers each doing `await client.send()`
 * back to back, through RedisPubSubClient or Nest's ClientRedis.
 */
import 'reflect-metadata';
import { ClientRedis, type ClientProxy } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../../lib/index.js';
import { config, emitToParent, nowNs, serve } from '../support/ipc.js';
import { RPC_PATTERN } from '../support/payloads.js';
import { latencySummary } from '../support/stats.js';

interface RpcClientConfig {
  kind: 'pubsub' | 'nest-redis';
  host: string;
  port: number;
}

const cfg = config<RpcClientConfig>();
// Only what the callers use: Nest 12 types ClientRedis' status as RedisStatus, which makes it
// unassignable to ClientProxy<..., string> under strictFunctionTypes.
const client: Pick<ClientProxy, 'connect' | 'send'> =
  cfg.kind === 'pubsub'
    ? new RedisPubSubClient({ url: `redis://${cfg.host}:${cfg.port}` })
    : new ClientRedis({ host: cfg.host, port: cfg.port, retryAttempts: 1000, retryDelay: 500 });

serve({
  async run({ concurrency, durationMs, warmupMs }: { concurrency: number; durationMs: number; warmupMs: number }) {
    const start = nowNs();
    const measureFrom = start + warmupMs * 1e6;
    const stopAt = measureFrom + durationMs * 1e6;
    const latencies: number[] = [];
    let errors = 0;
    let firstError: string | undefined;
    let n = 0;
    let lastDone = measureFrom;
    const caller = async () => {
      while (nowNs() < stopAt) {
        const t0 = nowNs();
        try {
          await lastValueFrom(client.send(RPC_PATTERN, { n: ++n }));
          const t1 = nowNs();
          if (t0 >= measureFrom && t1 <= stopAt) {
            latencies.push((t1 - t0) / 1e6);
            lastDone = t1;
          }
        } catch (error) {
          errors++;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, caller));
    const seconds = (lastDone - measureFrom) / 1e9;
    return {
      completed: latencies.length,
      perSecond: latencies.length / seconds,
      errors,
      firstError,
      latency: latencySummary(latencies),
      values: latencies.map((v) => Math.round(v * 1000) / 1000),
    };
  },
  exit() {
    setImmediate(() => process.exit(0));
    return true;
  },
});

client.connect().then(
  () => emitToParent('ready', { pid: process.pid }),
  (error: unknown) => {
    emitToParent('fatal', error instanceof Error ? error.message : String(error));
    setTimeout(() => process.exit(1), 100);
  },
);
