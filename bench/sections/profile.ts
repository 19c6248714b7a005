import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pin, SUT_CPUS } from '../support/affinity.js';
import { NEST_BARE, NEST_REDIS, PUBSUB, PUBSUB_BATCH, RAW, type Contender } from '../support/contenders.js';
import { startApp, waitSubscribers, type BenchContext } from '../support/context.js';
import { EVENT_CHANNEL, type SizeName } from '../support/payloads.js';
import { Worker } from '../support/worker.js';
import { burstRun } from './throughput.js';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  contender: string;
  size: SizeName;
  events: number;
  rate: number;
  /** sampled ms inside the measured burst window */
  sampledMs: number;
  categories: Array<{ name: string; percent: number }>;
  top: Array<{ fn: string; where: string; category: string; percent: number }>;
  /** inclusive time (self + callees) of the frames that tell the stories apart */
  inclusive: Array<{ frame: string; percent: number }>;
  file: string;
  /** CLOCK_MONOTONIC µs of the first and last event handled: the window the summary covers */
  windowUs: [number, number];
}

export interface ProfileResult {
  intervalUs: number;
  profiles: ProfileSummary[];
  /** ns per message of each step of MessageCodec.parse(), per payload size */
  codec: Record<string, Array<{ step: string; ns: number }>>;
}

const INTERVAL_US = 250;

export function categorize(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'V8/native (program)';
  if (url.includes('/dist/lib/')) return 'this transport (lib/)';
  if (url.includes('/dist/bench/')) return 'bench handler/sink';
  if (url.includes('@nestjs/microservices')) return '@nestjs/microservices';
  if (url.includes('@nestjs/core') || url.includes('@nestjs/common')) return '@nestjs/core+common';
  if (url.includes('rxjs')) return 'rxjs';
  if (url.includes('ioredis') || url.includes('redis-parser') || url.includes('@ioredis')) return 'ioredis + parser';
  if (url.startsWith('node:')) return 'node internals (events, streams, net)';
  if (url === '') return 'native builtins (JSON.parse, Buffer, ...)';
  return 'other';
}

function shortUrl(url: string, line: number): string {
  const cut = url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/');
  return cut ? `${cut}:${line + 1}` : '(native)';
}

/** Frames whose inclusive time is reported: [label, function name, file (substring)]. */
const FRAMES: Array<[string, string, string]> = [
  ['ioredis: socket data -> RESP decoder -> message event (everything below included)', 'write', 'ioredis/built/resp/decoder.js'],
  ['lib: PubSubLink message listener', '', 'dist/lib/pubsub-link.js'],
  ['lib: RedisPubSubServer.onMessage', 'onMessage', 'dist/lib/server.js'],
  ['lib: MessageCodec.parse (incl. JSON.parse)', 'parse', 'dist/lib/codec.js'],
  ['lib: MessageCodec inspect walk', 'inspect', 'dist/lib/codec.js'],
  ['lib: RedisPubSubServer.dispatch', 'dispatch', 'dist/lib/server.js'],
  ['lib: BatchDispatcher.add (queueing one message)', 'add', 'dist/lib/batch-dispatcher.js'],
  ['Nest: ServerRedis.handleMessage', 'handleMessage', '@nestjs/microservices/server/server-redis.js'],
  ['Nest: ServerRedis.parseMessage (JSON.parse)', 'parseMessage', '@nestjs/microservices/server/server-redis.js'],
  ['Nest: Server.getRouteFromPattern (JSON.parse of the pattern, throws)', 'getRouteFromPattern', '@nestjs/microservices/server/server.js'],
  ['Nest: runWithProcessingHooks', 'runWithProcessingHooks', '@nestjs/microservices/server/server.js'],
  ['Nest: handler pipeline (listeners-controller eventHandler: pipes, interceptors, param decorators)', 'eventHandler', '@nestjs/microservices/listeners-controller.js'],
  ['microtasks (promise jobs)', 'runMicrotasks', ''],
  ['GC', '(garbage collector)', ''],
];

/** Self time per function over the samples whose timestamp falls inside [fromUs, toUs]. */
export function summarize(profile: CpuProfile, fromUs: number, toUs: number) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    if (t < fromUs || t > toUs) continue;
    const dt = profile.timeDeltas[i + 1] ?? INTERVAL_US;
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  // Inclusive: every distinct frame on the sample's stack gets the sample once.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const frameUs = new Array<number>(FRAMES.length).fill(0);
  for (const [id, us] of self) {
    const hit = new Set<number>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const { functionName, url } = byId.get(cur)!.callFrame;
      FRAMES.forEach(([, fn, file], k) => {
        if ((fn === '' || fn === functionName) && (file === '' ? url === '' : url.includes(file))) hit.add(k);
      });
    }
    for (const k of hit) frameUs[k]! += us;
  }
  const fns = new Map<string, { fn: string; where: string; category: string; us: number }>();
  const cats = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const fn = functionName || '(anonymous)';
    const category = categorize(url, fn);
    const where = shortUrl(url, lineNumber);
    const key = `${fn}@${where}`;
    const entry = fns.get(key) ?? { fn, where, category, us: 0 };
    entry.us += us;
    fns.set(key, entry);
    cats.set(category, (cats.get(category) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((us / total) * 1000) / 10;
  return {
    sampledMs: total / 1000,
    categories: [...cats].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({ name, percent: pct(us) })),
    inclusive: FRAMES.map(([frame], k) => ({ frame, percent: pct(frameUs[k]!) })).filter((f) => f.percent > 0),
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, 15)
      .map((f) => ({ fn: f.fn, where: f.where, category: f.category, percent: pct(f.us) })),
  };
}

/**
 * `node --cpu-prof` on the subscriber process during one burst; self time of the burst window only.
 * The bare Nest transport and the batch handler are there to explain the per-event and batch targets.
 */
export async function profile(ctx: BenchContext, contenders: Contender[] = [RAW, NEST_REDIS, NEST_BARE, PUBSUB, PUBSUB_BATCH]): Promise<ProfileResult> {
  const sizes: Record<SizeName, number> = ctx.quick ? { small: 40_000, large: 8_000 } : { small: 200_000, large: 40_000 };
  const { host, port } = ctx.redis;
  rmSync(ctx.profileDir, { recursive: true, force: true });
  mkdirSync(ctx.profileDir, { recursive: true });
  const publisher = new Worker('publisher', 'publisher', { host, port });
  await publisher.waitReady();
  const profiles: ProfileSummary[] = [];
  try {
    for (const size of ['small', 'large'] as SizeName[]) {
      for (const contender of contenders) {
        const name = `${contender.id}-${size}`;
        const app = startApp(contender, host, port, {}, [
          '--cpu-prof',
          `--cpu-prof-dir=${ctx.profileDir}`,
          `--cpu-prof-name=${name}.cpuprofile`,
          `--cpu-prof-interval=${INTERVAL_US}`,
        ]);
        let run;
        let window: { firstNs: number; lastNs: number };
        try {
          await app.waitReady();
          await waitSubscribers(ctx.admin, EVENT_CHANNEL, 1);
          await burstRun(app, publisher, size, size === 'small' ? 30_000 : 6_000, { freeze: true });
          run = await burstRun(app, publisher, size, sizes[size], { freeze: true });
          window = await app.request('progress');
        } finally {
          await app.stop(15_000);
        }
        await waitSubscribers(ctx.admin, EVENT_CHANNEL, 0);
        const file = readdirSync(ctx.profileDir).find((f) => f === `${name}.cpuprofile`);
        if (!file) throw new Error(`profile ${name}.cpuprofile was not written`);
        const data = JSON.parse(readFileSync(join(ctx.profileDir, file), 'utf8')) as CpuProfile;
        // V8 profile timestamps and process.hrtime are both CLOCK_MONOTONIC (µs vs ns).
        const summary = summarize(data, window.firstNs / 1e3, window.lastNs / 1e3);
        profiles.push({
          contender: contender.id,
          size,
          events: run.handled,
          rate: run.rate,
          file: `profiles/${file}`,
          windowUs: [window.firstNs / 1e3, window.lastNs / 1e3],
          ...summary,
        });
        ctx.log(
          `profile ${name}: ${Math.round(run.rate)} ev/s, ${summary.sampledMs.toFixed(0)} ms sampled; ` +
            summary.categories.map((c) => `${c.name} ${c.percent}%`).join(', '),
        );
      }
    }
  } finally {
    await publisher.stop();
  }
  const micro = new Worker('codec-micro', 'codec-micro', {});
  pin(micro.pid, SUT_CPUS);
  let codec: ProfileResult['codec'];
  try {
    await micro.waitReady();
    codec = (await micro.request<{ results: ProfileResult['codec'] }>('run')).results;
  } finally {
    await micro.stop();
  }
  for (const [size, steps] of Object.entries(codec)) {
    ctx.log(`codec ${size}: ${steps.map((s) => `${s.step.split('  ')[0]} ${s.ns} ns`).join('; ')}`);
  }
  return { intervalUs: INTERVAL_US, profiles, codec };
}
