import { Redis } from 'ioredis';
import { delay } from '../../test/harness/wait.js';
import { NEST_REDIS, PUBSUB, type Contender } from '../support/contenders.js';
import { rotate, waitSubscribers, type BenchContext } from '../support/context.js';
import { pin, SUT_CPUS } from '../support/affinity.js';
import { spread, type Spread } from '../support/stats.js';
import { Worker } from '../support/worker.js';
import { manyChannel } from '../support/payloads.js';
import type { ManyChannelsConfig } from '../workers/many-channels.js';

export interface ResubscribeTrial {
  contender: string;
  /** new subscriber socket connected -> an event on the last subscribed channel handled (ms) */
  handlingMs: number;
  /** ours only: new socket connected -> `resubscribed` (every subscription acknowledged) (ms) */
  acknowledgedMs: number | null;
}

export interface ResubscribeResult {
  channels: number;
  rounds: number;
  contenders: Array<{ id: string; label: string; handling: Spread; acknowledged: Spread | null }>;
  trials: ResubscribeTrial[];
}

/**
 * 50,000 subscriptions, then `CLIENT KILL TYPE pubsub`: how long from the new subscriber socket
 * being up until the server handles events on its last channel again. Measured from the
 * socket's connect, so the contenders' different retry delays do not count.
 */
export async function resubscribe(ctx: BenchContext, contenders: Contender[] = [NEST_REDIS, PUBSUB]): Promise<ResubscribeResult> {
  const channels = ctx.quick ? 10_000 : 50_000;
  const rounds = ctx.quick ? 1 : 5;
  const { host, port } = ctx.redis;
  const last = manyChannel(channels - 1);
  const trials: ResubscribeTrial[] = [];
  const publisher = new Redis({ host, port });
  publisher.on('error', () => undefined);
  try {
    for (let round = 0; round < rounds; round++) {
      for (const contender of rotate(contenders, round)) {
        const workerConfig: ManyChannelsConfig = {
          kind: contender.app.kind === 'pubsub' ? 'pubsub' : 'nest-redis',
          host,
          port,
          channels,
          nestRedis: contender.app.nestRedis,
        };
        const app = new Worker(contender.id, 'many-channels', workerConfig);
        pin(app.pid, SUT_CPUS);
        // Events on the last channel every 2 ms, before, through and after the reconnect.
        let publishing = true;
        const ticker = (async () => {
          while (publishing) {
            await publisher.publish(last, JSON.stringify({ pattern: last, data: 1 })).catch(() => undefined);
            await delay(2);
          }
        })();
        try {
          await app.waitReady(120_000);
          await waitSubscribers(ctx.admin, last, 1, 120_000);
          await app.request('arm');
          await ctx.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
          const r = await app.request<{ connectNs?: number; handledNs?: number; resubscribedNs?: number }>('result', undefined, 120_000);
          const trial: ResubscribeTrial = {
            contender: contender.id,
            handlingMs: (r.handledNs! - r.connectNs!) / 1e6,
            acknowledgedMs: r.resubscribedNs === undefined ? null : (r.resubscribedNs - r.connectNs!) / 1e6,
          };
          trials.push(trial);
          ctx.log(
            `resubscribe ${channels} round ${round + 1}/${rounds} ${contender.id}: handling again ${trial.handlingMs.toFixed(0)} ms after connect` +
              (trial.acknowledgedMs === null ? '' : `, all acknowledged after ${trial.acknowledgedMs.toFixed(0)} ms`),
          );
        } finally {
          publishing = false;
          await ticker;
          await app.stop();
        }
        await waitSubscribers(ctx.admin, last, 0, 60_000);
      }
    }
  } finally {
    publisher.disconnect();
  }
  return {
    channels,
    rounds,
    contenders: contenders.map((c) => {
      const mine = trials.filter((t) => t.contender === c.id);
      const acknowledged = mine.map((t) => t.acknowledgedMs).filter((x): x is number => x !== null);
      return { id: c.id, label: c.label, handling: spread(mine.map((t) => t.handlingMs)), acknowledged: acknowledged.length ? spread(acknowledged) : null };
    }),
    trials,
  };
}
