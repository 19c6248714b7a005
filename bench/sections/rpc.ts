import { NEST_REDIS, PUBSUB, type Contender } from '../support/contenders.js';
import { fmtInt, startApp, waitSubscribers, type BenchContext } from '../support/context.js';
import { RPC_PATTERN } from '../support/payloads.js';
import { latencySummary, type LatencySummary } from '../support/stats.js';
import { Worker } from '../support/worker.js';

export interface RpcRun {
  concurrency: number;
  /** round trips/s of each round */
  perRound?: number[];
  completed: number;
  perSecond: number;
  errors: number;
  firstError?: string;
  latency: LatencySummary;
}

export interface RpcResult {
  rounds?: number;
  durationMs: number;
  warmupMs: number;
  contenders: Array<{ id: string; label: string; runs: RpcRun[] }>;
}

const PAIRS: Array<{ server: Contender; client: 'pubsub' | 'nest-redis'; label: string }> = [
  { server: NEST_REDIS, client: 'nest-redis', label: 'ClientRedis -> ServerRedis (built-in)' },
  { server: PUBSUB, client: 'pubsub', label: 'RedisPubSubClient -> RedisPubSubServer' },
];

export async function rpc(ctx: BenchContext): Promise<RpcResult> {
  const durationMs = ctx.quick ? 1_000 : 3_000;
  const rounds = ctx.quick ? 1 : 2;
  const warmupMs = ctx.quick ? 300 : 1_000;
  const { host, port } = ctx.redis;
  const raw = new Map<string, Map<number, Array<RpcRun & { values: number[] }>>>(PAIRS.map((p) => [p.server.id, new Map()]));
  for (let round = 0; round < rounds; round++) {
    for (const pair of round % 2 ? [...PAIRS].reverse() : PAIRS) {
      const server = startApp(pair.server, host, port);
      const client = new Worker(`${pair.client}-client`, 'rpc-client', { kind: pair.client, host, port });
      try {
        await server.waitReady();
        await waitSubscribers(ctx.admin, RPC_PATTERN, 1);
        await client.waitReady();
        for (const concurrency of [1, 64]) {
          const r = await client.request<RpcRun & { values: number[] }>('run', { concurrency, durationMs, warmupMs }, durationMs + warmupMs + 60_000);
          const list = raw.get(pair.server.id)!.get(concurrency) ?? [];
          list.push(r);
          raw.get(pair.server.id)!.set(concurrency, list);
          ctx.log(
            `rpc round ${round + 1}/${rounds} ${pair.server.id} x${concurrency}: ${fmtInt(r.perSecond)} rt/s, p50 ${r.latency.p50.toFixed(2)} p99 ${r.latency.p99.toFixed(2)} ms` +
              (r.errors ? `, ${r.errors} errors (${r.firstError})` : ''),
          );
        }
      } finally {
        await Promise.all([client.stop(), server.stop()]);
      }
      await waitSubscribers(ctx.admin, RPC_PATTERN, 0);
    }
  }
  const out: RpcResult['contenders'] = PAIRS.map((pair) => ({
    id: pair.server.id,
    label: pair.label,
    runs: [1, 64].map((concurrency): RpcRun => {
      const rs = raw.get(pair.server.id)!.get(concurrency) ?? [];
      return {
        concurrency,
        perRound: rs.map((r) => r.perSecond),
        completed: rs.reduce((a, r) => a + r.completed, 0),
        perSecond: rs.reduce((a, r) => a + r.perSecond, 0) / rs.length,
        errors: rs.reduce((a, r) => a + r.errors, 0),
        firstError: rs.find((r) => r.firstError)?.firstError,
        latency: latencySummary(rs.flatMap((r) => r.values)),
      };
    }),
  }));
  return { rounds, durationMs, warmupMs, contenders: out };
}
