/**
 * `npm run bench [-- section ...]`: starts its own redis-server (free port, 127.0.0.1), runs the
 * sections, writes bench/results/results.json, RESULTS.md and throughput.svg.
 * Sections: throughput telemetry latency rpc recovery resubscribe cost profile delivery cluster (default: all); `report` only re-renders
 * RESULTS.md and throughput.svg from results.json.
 * BENCH_QUICK=1: a ~1 minute smoke run, written to bench/results/quick/ instead.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectClient, closeClient } from '../test/harness/clients.js';
import { startRedis, stopAllRedis, type RedisServerHandle } from '../test/harness/redis.js';
import { OTHER_CPUS, pin, pinningDescription } from './support/affinity.js';
import { pidTracker, type BenchContext } from './support/context.js';
import { machineInfo } from './support/machine.js';
import { renderMarkdown, throughputSvg, type AllResults } from './support/report.js';
import { Worker } from './support/worker.js';
import { clusterSection } from './sections/cluster.js';
import { cost } from './sections/cost.js';
import { delivery } from './sections/delivery.js';
import { latency } from './sections/latency.js';
import { recovery } from './sections/recovery.js';
import { resubscribe } from './sections/resubscribe.js';
import { profile } from './sections/profile.js';
import { rpc } from './sections/rpc.js';
import { telemetry } from './sections/telemetry.js';
import { throughput } from './sections/throughput.js';

const SECTIONS = ['throughput', 'telemetry', 'latency', 'rpc', 'recovery', 'resubscribe', 'cost', 'profile', 'delivery', 'cluster'] as const;
type SectionName = (typeof SECTIONS)[number];

const RUNNERS: Partial<Record<SectionName, (ctx: BenchContext) => Promise<unknown>>> = {
  throughput,
  telemetry,
  latency,
  rpc,
  recovery,
  resubscribe,
  cost,
  profile,
  delivery,
  cluster: clusterSection,
};

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

function parseArgs(): SectionName[] {
  const args = process.argv.slice(2).filter((a) => a !== '--');
  for (const a of args) {
    if (!(SECTIONS as readonly string[]).includes(a)) {
      console.error(`unknown section "${a}"; known: ${SECTIONS.join(', ')}`);
      process.exit(2);
    }
  }
  return args.length ? (args as SectionName[]) : [...SECTIONS];
}

async function main(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const outDir = join(repoRoot, 'bench', 'results', ...(quick ? ['quick'] : []));
  mkdirSync(outDir, { recursive: true });
  if (process.argv.slice(2).includes('report')) {
    // Re-renders RESULTS.md and throughput.svg from results.json, measuring nothing.
    writeReports(outDir, JSON.parse(readFileSync(join(outDir, 'results.json'), 'utf8')) as Results);
    console.log(`re-rendered ${join(outDir, 'RESULTS.md')} from results.json`);
    return;
  }
  const sections = parseArgs();
  const profileDir = join(outDir, 'profiles');
  const trackPid = pidTracker(process.env.BENCH_PIDFILE);
  Worker.onSpawn = trackPid;
  const started = Date.now();
  const log = (message: string) => console.log(`[bench +${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);

  // Everything this process forks or spawns inherits cores 0..n-2; the subscriber under test gets core n-1.
  pin(process.pid, OTHER_CPUS);
  log(pinningDescription());
  let redis: RedisServerHandle | undefined;
  try {
    // A slow subscriber must not be disconnected by Redis for buffering a burst: pub/sub output buffer limit off.
    redis = await startRedis({ config: { 'client-output-buffer-limit': 'pubsub 0 0 0' } });
    trackPid(redis.pid);
    const admin = await connectClient(redis.url);
    const version = /redis_version:(\S+)/.exec(String(await admin.info('server')))?.[1] ?? 'unknown';
    const machine = await machineInfo(version);
    log(`machine: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}, Redis ${machine.redis}, ioredis ${machine.ioredis}`);
    const ctx: BenchContext = { quick, redis, admin, profileDir, log, trackPid };

    const resultsFile = join(outDir, 'results.json');
    const previous = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Results) : undefined;
    const results: Results = { ...previous, sections: { ...previous?.sections } } as Results;
    for (const name of sections) {
      const runner = RUNNERS[name];
      if (!runner) {
        log(`section ${name}: not implemented yet`);
        continue;
      }
      log(`section ${name}: start`);
      const t0 = Date.now();
      const data = await runner(ctx);
      results.sections[name] = { at: new Date().toISOString(), seconds: (Date.now() - t0) / 1000, quick, machine, data };
      writeFileSync(resultsFile, JSON.stringify(results, null, 2));
      writeReports(outDir, results);
      log(`section ${name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    writeReports(outDir, results);
    log(`wrote ${join(outDir, 'RESULTS.md')}`);
    await closeClient(admin);
    log(`all done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    Worker.killAllSync();
    await stopAllRedis();
  }
}

function writeReports(outDir: string, results: Results): void {
  const all = results as unknown as AllResults;
  writeFileSync(join(outDir, 'RESULTS.md'), renderMarkdown(all));
  if (all.sections.throughput) writeFileSync(join(outDir, 'throughput.svg'), throughputSvg(all.sections.throughput));
}

export interface Results {
  sections: Partial<Record<SectionName, { at: string; seconds: number; quick: boolean; machine: unknown; data: any }>>;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    console.error(`bench: ${signal}, cleaning up`);
    Worker.killAllSync();
    // The harness' exit hook SIGKILLs every redis-server it started and removes its temp dir.
    process.exit(130);
  });
}
process.on('exit', () => Worker.killAllSync());

main().then(
  // Exit explicitly: letting the loop drain sometimes left node spinning at 100% CPU inside its
  // exit-time handle cleanup (Environment::CleanupHandles, seen with the harness' unref'd reaper child).
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  },
);
