import type { ClusterResult } from '../sections/cluster.js';
import type { CostResult } from '../sections/cost.js';
import type { DeliveryResult } from '../sections/delivery.js';
import type { LatencyResult } from '../sections/latency.js';
import type { ProfileResult } from '../sections/profile.js';
import type { RecoveryResult, TrialOutcome } from '../sections/recovery.js';
import type { ResubscribeResult } from '../sections/resubscribe.js';
import type { RpcResult } from '../sections/rpc.js';
import type { TelemetryResult } from '../sections/telemetry.js';
import type { ThroughputResult } from '../sections/throughput.js';
import type { MachineInfo } from './machine.js';
import type { Spread } from './stats.js';
import { barChart } from './svg.js';
import { clusterSection } from './report-cluster.js';
import { deliverySection, deliveryTarget } from './report-delivery.js';

export interface SectionRecord<T> {
  at: string;
  seconds: number;
  quick: boolean;
  machine: MachineInfo;
  data: T;
}

export interface AllResults {
  sections: {
    throughput?: SectionRecord<ThroughputResult>;
    telemetry?: SectionRecord<TelemetryResult>;
    latency?: SectionRecord<LatencyResult>;
    rpc?: SectionRecord<RpcResult>;
    recovery?: SectionRecord<RecoveryResult>;
    resubscribe?: SectionRecord<ResubscribeResult>;
    cost?: SectionRecord<CostResult>;
    profile?: SectionRecord<ProfileResult>;
    delivery?: SectionRecord<DeliveryResult>;
    cluster?: SectionRecord<ClusterResult>;
  };
}

const int = (n: number | null | undefined) => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : Math.round(n).toLocaleString('en-US'));
const ms = (n: number | null | undefined, digits = 2) => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits));
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(2)}×` : 'n/a');
const verdict = (ok: boolean) => (ok ? '**met**' : '**MISSED**');

const COLORS: Record<string, string> = {
  raw: '#8c959f',
  'nest-redis': '#cf222e',
  pubsub: '#0969da',
  'pubsub-hb500': '#54aeff',
  'pubsub-otel': '#8250df',
  'pubsub-without-otel': '#0550ae',
  'nest-bare': '#bf8700',
  'pubsub-batch': '#1a7f37',
};
const SIZE_LABEL = { small: '100 B', large: '4 KiB' } as const;

export function throughputSvg(t: SectionRecord<ThroughputResult>): string {
  const m = t.machine;
  return barChart(
    'Events/s from publish to handler, same Redis, same bytes (higher is better)',
    `median of ${t.data.rounds} runs, whiskers min–max · ${m.cores} cores ${m.cpuModel} · Node ${m.node} · Redis ${m.redis.split(' ')[0]} · ioredis ${m.ioredis} · ${t.at.slice(0, 10)}`,
    (['small', 'large'] as const).map((size) => ({
      title: `${SIZE_LABEL[size]} payload (${int(t.data.messages[size])} events per run)`,
      bars: t.data.contenders.map((c) => {
        const nest = find(t.data.contenders, 'nest-redis');
        return {
          label: c.label,
          median: c.sizes[size].median,
          min: c.sizes[size].min,
          max: c.sizes[size].max,
          color: COLORS[c.id] ?? '#6e7781',
          note: nest && c.id !== 'nest-redis' ? `(${ratio(c.sizes[size].median, nest.sizes[size].median)} built-in)` : undefined,
        };
      }),
    })),
    'ev/s',
  );
}

/** The same ratio in events per CPU-second, when the results have it. */
function perCpu(a: ThroughputResult['contenders'][number], b: ThroughputResult['contenders'][number], size: 'small' | 'large'): string {
  const x = a.sizes[size].cpu?.median;
  const y = b.sizes[size].cpu?.median;
  return x && y ? ` (${(x / y).toFixed(3)}× per CPU-second)` : '';
}

function find<T extends { id: string }>(list: T[], id: string): T | undefined {
  return list.find((c) => c.id === id);
}

interface TargetRow {
  target: string;
  measured: string;
  ok: boolean | null;
}

function targets(r: AllResults): TargetRow[] {
  const rows: TargetRow[] = [];
  if (r.sections.delivery) rows.push(deliveryTarget(r.sections.delivery.data));
  const t = r.sections.throughput?.data;
  if (t) {
    for (const id of ['pubsub', 'pubsub-hb500']) {
      const mine = find(t.contenders, id);
      const nest = find(t.contenders, 'nest-redis');
      const raw = find(t.contenders, 'raw');
      if (!mine) continue;
      for (const size of ['small', 'large'] as const) {
        if (nest) {
          const x = mine.sizes[size].median / nest.sizes[size].median;
          rows.push({ target: `Throughput ≥ 2× built-in, ${SIZE_LABEL[size]} (${id})`, measured: `${x.toFixed(3)}×`, ok: x >= 2 });
        }
        if (raw) {
          const x = mine.sizes[size].median / raw.sizes[size].median;
          rows.push({ target: `Throughput ≥ 0.8× raw ioredis, ${SIZE_LABEL[size]} (${id})`, measured: `${x.toFixed(3)}×`, ok: x >= 0.8 });
        }
      }
    }
  }
  const bare = t && find(t.contenders, 'nest-bare');
  const perEvent = t && find(t.contenders, 'pubsub');
  const batch = t && find(t.contenders, 'pubsub-batch');
  const rawT = t && find(t.contenders, 'raw');
  for (const size of ['small', 'large'] as const) {
    if (bare && perEvent) {
      const x = perEvent.sizes[size].median / bare.sizes[size].median;
      rows.push({
        target: `Per-event path ≥ 0.95× the bare Nest transport (the ceiling of per-event delivery through Nest), ${SIZE_LABEL[size]}`,
        measured: `${x.toFixed(3)}×${perCpu(perEvent, bare, size)}`,
        ok: x >= 0.95,
      });
    }
    if (batch && rawT) {
      const x = batch.sizes[size].median / rawT.sizes[size].median;
      rows.push({
        target: `Batch handler ≥ 0.9× raw ioredis, ${SIZE_LABEL[size]}${size === 'large' ? ' (no target: JSON.parse dominates)' : ''}`,
        measured: `${x.toFixed(3)}×${perCpu(batch, rawT, size)}${perEvent ? `; ${ratio(batch.sizes[size].median, perEvent.sizes[size].median)} the per-event path` : ''}`,
        ok: size === 'small' ? x >= 0.9 : null,
      });
    }
  }
  const tel = r.sections.telemetry?.data;
  if (tel) {
    const x = tel.offVsWithout.cpu;
    rows.push({
      target: 'OpenTelemetry off (no provider registered) within 3% of the same build without the feature, 100 B',
      measured: `${x.median.toFixed(3)}× per CPU-second (per-round ${x.min.toFixed(3)}–${x.max.toFixed(3)}, ${x.runs.length} rounds); ${tel.offVsWithout.rate.median.toFixed(3)}× in ev/s`,
      ok: x.median >= 0.97,
    });
  }
  const l = r.sections.latency?.data;
  if (l) {
    const nest = find(l.contenders, 'nest-redis')?.runs.find((x) => x.rate === 10_000);
    for (const id of ['pubsub', 'pubsub-hb500']) {
      const mine = find(l.contenders, id)?.runs.find((x) => x.rate === 10_000);
      if (mine && nest) {
        rows.push({
          target: `p99 at 10k/s ≤ built-in (${id})`,
          measured: `${ms(mine.latency.p99)} ms vs ${ms(nest.latency.p99)} ms (service p99 ${ms(mine.service.p99)} vs ${ms(nest.service.p99)} ms)`,
          ok: mine.latency.p99 <= nest.latency.p99,
        });
      }
    }
  }
  const rec = r.sections.recovery?.data;
  if (rec) {
    for (const c of rec.contenders) {
      if (!c.heartbeat) continue;
      const budget = c.heartbeat.intervalMs + c.heartbeat.timeoutMs + 500;
      const of = (fault: string) => rec.outcomes.filter((o) => o.contender === c.id && o.fault === fault);
      const worst = (xs: Array<number | null>) => (xs.some((x) => x === null) ? null : Math.max(...(xs as number[])));
      const bh = of('blackhole');
      const bhDetect = worst(bh.map((o) => o.detectMs));
      rows.push({
        target: `Blackhole detected within intervalMs + timeoutMs + 0.5 s = ${budget / 1000} s (${c.id})`,
        measured: bhDetect === null ? 'not detected in every trial' : `worst ${int(bhDetect)} ms`,
        ok: bhDetect !== null && bhDetect <= budget,
      });
      const restart = worst(of('restart').map((o) => o.fromBackMs));
      rows.push({
        target: `Restart: handling again within 1 s of Redis accepting connections (${c.id})`,
        measured: restart === null ? 'no recovery in every trial' : `worst ${int(restart)} ms`,
        ok: restart !== null && restart <= 1_000,
      });
      const reset = worst(of('reset').map((o) => o.recoveryMs));
      rows.push({
        target: `Reset: handling again within 1 s (Redis never went away) (${c.id})`,
        measured: reset === null ? 'no recovery in every trial' : `worst ${int(reset)} ms`,
        ok: reset !== null && reset <= 1_000,
      });
      for (const fault of ['stall', 'partition', 'path-partition', 'blackhole']) {
        const mine = of(fault);
        const builtIn = rec.outcomes.filter((o) => o.contender === 'nest-redis' && o.fault === fault);
        if (!mine.length || !builtIn.length || mine.some((o) => o.lost === undefined)) continue;
        const lost = mine.reduce((n, o) => n + o.lost, 0);
        const theirs = builtIn.reduce((n, o) => n + o.lost, 0);
        const duplicates = mine.reduce((n, o) => n + o.duplicates, 0);
        rows.push({
          target: `${fault}: events lost <= built-in's on the same fault, none twice (${c.id})`,
          measured: `${lost} lost (built-in ${theirs}), ${duplicates} duplicates`,
          ok: lost <= theirs && duplicates === 0,
        });
      }
      const reroute = worst(of('reroute').map((o) => o.recoveryMs));
      rows.push({
        target: `Reroute: handling again within ${budget / 1000 + 1} s (detection budget + 1 s) (${c.id})`,
        measured: reroute === null ? 'no recovery in every trial' : `worst ${int(reroute)} ms`,
        ok: reroute !== null && reroute <= budget + 1_000,
      });
    }
  }
  return rows;
}

function machineTable(m: MachineInfo): string[] {
  return [
    '| Cores | CPU | Memory | OS | Node | Redis | ioredis | @nestjs/microservices | @nestjs/core |',
    '|---|---|---|---|---|---|---|---|---|',
    `| ${m.cores} | ${m.cpuModel} | ${m.memoryGiB} GiB | ${m.os} | ${m.node} | ${m.redis} | ${m.ioredis} | ${m.nestMicroservices} | ${m.nestCore} |`,
  ];
}

function throughputSection(t: SectionRecord<ThroughputResult>): string[] {
  const d = t.data;
  const nest = find(d.contenders, 'nest-redis');
  const raw = find(d.contenders, 'raw');
  const out = [
    `## 1. Throughput`,
    '',
    `![Events/s from publish to handler](throughput.svg)`,
    '',
    `Events/s from publish to a handler that counts, median of ${d.rounds} runs (min–max), ${int(d.messages.small)} events of 100 B / ${int(d.messages.large)} of 4 KiB per run after a warm-up of ${int(d.warmup.small)} / ${int(d.warmup.large)}, timed at the subscriber from the first to the last event handled. The subscriber process is frozen (SIGSTOP) while the publisher sends the run, which Redis buffers, then continued (SIGCONT): what is measured is how fast each subscriber gets through the same backlog, with no publisher competing for the CPU (while this bench was built, a publisher running alongside on 2 cores made the raw ceiling vary from 125k to 214k events/s between identical runs). Ratios are of medians from this run. The bare Nest transport does nothing but \`JSON.parse\` and call the handler Nest registered: the ceiling of per-event delivery through Nest's handler pipeline. The batch row is the same events through \`@EventPattern(..., { batch: true })\` (defaults: \`maxBatchSize\` 1000, \`maxWaitMs\` 0): see Targets.`,
    '',
    '| Contender | 100 B: median ev/s | min–max | vs built-in | vs raw | 4 KiB: median ev/s | min–max | vs built-in | vs raw |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of d.contenders) {
    const cells = (['small', 'large'] as const).map((size) => {
      const s = c.sizes[size];
      return [
        int(s.median),
        `${int(s.min)}–${int(s.max)}`,
        nest ? ratio(s.median, nest.sizes[size].median) : 'n/a',
        raw ? ratio(s.median, raw.sizes[size].median) : 'n/a',
      ].join(' | ');
    });
    out.push(`| ${c.label} | ${cells.join(' | ')} |`);
  }
  out.push(
    '',
    'The same runs in events per CPU-second of the subscriber process (its user + system CPU time from arming to the last event): what each contender costs, much less sensitive than events/s to whatever else a shared machine runs.',
    '',
    '| Contender | 100 B: median ev/CPU-s | min–max | vs raw | 4 KiB: median ev/CPU-s | min–max | vs raw |',
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const c of d.contenders) {
    const cells = (['small', 'large'] as const).map((size) => {
      const s = c.sizes[size].cpu;
      return s ? [int(s.median), `${int(s.min)}–${int(s.max)}`, raw?.sizes[size].cpu ? ratio(s.median, raw.sizes[size].cpu.median) : 'n/a'].join(' | ') : 'n/a | n/a | n/a';
    });
    out.push(`| ${c.label} | ${cells.join(' | ')} |`);
  }
  const lost = d.contenders.flatMap((c) =>
    (['small', 'large'] as const).flatMap((size) => c.sizes[size].runsDetail.filter((r) => r.lost).map(() => `${c.id} ${SIZE_LABEL[size]}`)),
  );
  const pubRates = d.contenders.flatMap((c) => (['small', 'large'] as const).flatMap((s) => c.sizes[s].runsDetail.map((r) => r.publishRate)));
  out.push('');
  out.push(
    `Publisher (one raw ioredis connection, pipelined): ${int(Math.min(...pubRates))}–${int(Math.max(...pubRates))} PUBLISH/s accepted by Redis across runs. ` +
      (lost.length ? `**Runs with lost messages: ${lost.join(', ')}.**` : 'No run lost a message.'),
  );
  return out;
}

function telemetrySection(t: SectionRecord<TelemetryResult>): string[] {
  const d = t.data;
  const pct = (x: Spread) => `${x.median.toFixed(3)}× (${x.min.toFixed(3)}–${x.max.toFixed(3)})`;
  const out = [
    '### What OpenTelemetry costs',
    '',
    `100 B events as in the throughput table (${int(d.messages)} per run after ${int(d.warmup)} of warm-up), ${d.rounds} rounds, the three contenders alternating within each round (order rotated). The control is the same library compiled a second time by the bench with the feature cut out (bench/support/without-telemetry.ts: \`TransportTelemetry.start()\` and every read of the transports' \`telemetry\` field replaced by \`undefined\`, so the per-message checks fold away). "Off" is the transport as shipped, with \`@opentelemetry/api\` installed and no provider registered. Ratios are paired per round: median (min–max).`,
    '',
    '| Contender | median ev/s | min–max | median ev/CPU-s | min–max |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const c of d.contenders) out.push(`| ${c.label} | ${int(c.rate.median)} | ${int(c.rate.min)}–${int(c.rate.max)} | ${int(c.cpu.median)} | ${int(c.cpu.min)}–${int(c.cpu.max)} |`);
  out.push(
    '',
    '| Ratio, per round | ev/CPU-s | ev/s |',
    '|---|---:|---:|',
    `| off / control (target ≥ 0.97) | ${pct(d.offVsWithout.cpu)} | ${pct(d.offVsWithout.rate)} |`,
    `| providers registered, no-op exporters / off | ${pct(d.onVsOff.cpu)} | ${pct(d.onVsOff.rate)} |`,
  );
  return out;
}

function latencySection(l: SectionRecord<LatencyResult>): string[] {
  const out = [
    '## 2. Latency',
    '',
    `Publish-to-handler latency (ms) at fixed rates, 100 B events, ${l.data.rounds} round(s) of fresh subscriber processes per contender (order rotated), samples pooled. Each message carries its *intended* send time (a fixed schedule); latency = handled − intended, so a late publisher or a backlog counts (no coordinated omission). "Service" = handled − actual send, i.e. without the publisher\'s own timer lateness. Publisher and subscriber are separate processes; both stamp CLOCK_MONOTONIC (\`process.hrtime\`), which all processes of a machine share.`,
    '',
    '| Contender | Rate | p50 | p99 | p99.9 | max | p99 of each round | service p50 | service p99 | Keeps up? |',
    '|---|---:|---:|---:|---:|---:|---|---:|---:|---|',
  ];
  for (const c of l.data.contenders) {
    for (const r of c.runs) {
      const keeps = r.keptUp
        ? 'yes'
        : `**no**: handled ${int(r.handledRate)}/s, ${int(r.handled)}/${int(r.sent)}, backlog drained ${int(r.drainMs)} ms after the last send`;
      out.push(
        `| ${c.label} | ${int(r.rate)}/s | ${ms(r.latency.p50)} | ${ms(r.latency.p99)} | ${ms(r.latency.p999)} | ${ms(r.latency.max, 1)} | ${(r.p99PerRound ?? []).map((x) => ms(x)).join(', ')} | ${ms(r.service.p50)} | ${ms(r.service.p99)} | ${keeps} |`,
      );
    }
  }
  const lags = l.data.contenders.flatMap((c) => c.runs.map((r) => r.publisherLag));
  out.push('');
  out.push(
    `Floor under every row: the publisher's timers tick at ≥ 1 ms, so it sends each message ${ms(Math.min(...lags.map((x) => x.p50)))}–${ms(Math.max(...lags.map((x) => x.p50)))} ms late at the median (p99 ${ms(Math.min(...lags.map((x) => x.p99)))}–${ms(Math.max(...lags.map((x) => x.p99)))} ms) whatever the contender; that is included in the intended-time columns. "Keeps up" = every message handled and the last one within 250 ms of its intended time.`,
  );
  return out;
}

function rpcSection(r: SectionRecord<RpcResult>): string[] {
  const out = [
    '## 3. Request-response',
    '',
    `\`client.send()\` round trips to a \`@MessagePattern\` handler returning a small object, closed loop (each caller awaits its reply before the next send), ${r.data.durationMs / 1000} s after ${r.data.warmupMs / 1000} s warm-up, ${r.data.rounds ?? 1} round(s) of fresh processes (mean round trips/s, latencies pooled); client and server in separate processes, the server pinned alone on its core.`,
    '',
    '| Client → server | Concurrent callers | Round trips/s | each round | p50 ms | p99 ms | p99.9 ms | Errors |',
    '|---|---:|---:|---|---:|---:|---:|---:|',
  ];
  for (const c of r.data.contenders) {
    for (const run of c.runs) {
      out.push(
        `| ${c.label} | ${run.concurrency} | ${int(run.perSecond)} | ${(run.perRound ?? []).map((x) => int(x)).join(', ')} | ${ms(run.latency.p50)} | ${ms(run.latency.p99)} | ${ms(run.latency.p999)} | ${run.errors}${run.firstError ? ` (${run.firstError})` : ''} |`,
      );
    }
  }
  const nest = find(r.data.contenders, 'nest-redis');
  const mine = find(r.data.contenders, 'pubsub');
  if (nest && mine) {
    out.push('');
    out.push(
      `Ratio (this transport / built-in): ` +
        mine.runs
          .map((m) => {
            const n = nest.runs.find((x) => x.concurrency === m.concurrency);
            return n ? `${m.concurrency} caller(s): ${ratio(m.perSecond, n.perSecond)} round trips/s, p99 ${ms(m.latency.p99)} vs ${ms(n.latency.p99)} ms` : '';
          })
          .join('; ') +
        '.',
    );
  }
  return out;
}

const FAULT_TEXT: Record<string, string> = {
  blackhole: 'Blackhole (both directions silently dropped, sockets stay open)',
  reset: 'Reset (RST on every connection; Redis stays up)',
  restart: 'Redis restart (SIGKILL, same port again after 2 s)',
  reroute: 'Reroute (live connections moved to a second, fresh redis-server)',
  stall: 'Stall (redis-server frozen with SIGSTOP for 5 s)',
  partition: 'Partition healed after 8 s (every connection, new ones too)',
  'path-partition': 'Path partition healed after 8 s (existing connections only; new ones work)',
};

function recoverySection(rec: SectionRecord<RecoveryResult>): string[] {
  const d = rec.data;
  const win = `no recovery within ${d.windowMs / 1000} s`;
  const out = [
    '## 4. Recovery',
    '',
    `A FaultProxy sits between each subscriber and redis-server; a publisher connected straight to Redis publishes a marker every ${d.markerIntervalMs} ms. **Recovered** = the first marker published after the fault is handled (resolution ${d.markerIntervalMs} ms); **detected** = first sign the contender noticed (our \`heartbeat-timeout\` / \`probe-failed\` / status change; ioredis \`close\`/\`reconnecting\` for the built-in). ${d.trials} trial(s) per fault; values per trial, in ms from the fault (restart: also from Redis accepting connections again). Built-in configured as a user would: \`retryAttempts: 1000, retryDelay: 500\`.`,
    '',
    '| Fault | Contender | Detected (ms) | Handling again (ms from fault) | From Redis back (ms) | Median recovery |',
    '|---|---|---|---|---|---:|',
  ];
  const fmtList = (xs: Array<number | null>) => xs.map((x) => (x === null ? '—' : int(x))).join(', ');
  for (const fault of Object.keys(FAULT_TEXT)) {
    for (const c of d.contenders) {
      const os: TrialOutcome[] = d.outcomes.filter((o) => o.fault === fault && o.contender === c.id);
      if (!os.length) continue;
      const rec = os.map((o) => o.recoveryMs);
      const never = rec.filter((x) => x === null).length;
      const got = rec.filter((x): x is number => x !== null).sort((a, b) => a - b);
      const median = got.length ? got[Math.floor((got.length - 1) / 2)]! : null;
      const medianText =
        never === os.length ? `**${win}**` : never > 0 ? `${int(median)} (**${never}/${os.length} trials: ${win}**)` : int(median);
      out.push(
        `| ${FAULT_TEXT[fault]} | ${c.label} | ${fmtList(os.map((o) => o.detectMs))} | ${rec.map((x) => (x === null ? win : int(x))).join(', ')} | ${
          fault === 'restart' ? fmtList(os.map((o) => o.fromBackMs)) : '—'
        } | ${medianText} |`,
      );
    }
  }
  out.push(
    '',
    `Events lost per fault: markers Redis executed from 0.5 s before the fault until the end of the window (recovery + ${3} s, minus the last second) that the contender never handled, and markers handled twice; per trial, lost/published.`,
    '',
    '| Fault | Contender | Lost (per trial) | Duplicates |',
    '|---|---|---|---:|',
  );
  for (const fault of Object.keys(FAULT_TEXT)) {
    for (const c of d.contenders) {
      const os: TrialOutcome[] = d.outcomes.filter((o) => o.fault === fault && o.contender === c.id);
      if (!os.length || os.some((o) => o.lost === undefined)) continue;
      out.push(
        `| ${FAULT_TEXT[fault]} | ${c.label} | ${os.map((o) => `${o.lost}/${o.published}`).join(', ')} | ${os.reduce((n, o) => n + o.duplicates, 0)} |`,
      );
    }
  }
  out.push('');
  out.push(
    'Up to four faults run side by side (each on its own redis-server(s), proxies and subscriber processes), contenders side by side within a fault; they share only the CPU, which is idle but for the markers. After a restart, how soon a contender is back depends on where its retry schedule stands when Redis returns: the built-in retries every 500 ms (`retryDelay`), this transport backs off 50 → 100 → 200 → 250 ms (cap, each delay drawn from [cap/2, cap]), so the built-in may wait up to ~500 ms and this transport up to ~250 ms.',
  );
  return out;
}

function resubscribeSection(r: SectionRecord<ResubscribeResult>): string[] {
  const d = r.data;
  const nest = d.contenders.find((c) => c.id === 'nest-redis');
  const out = [
    `### Resubscription of ${int(d.channels)} channels`,
    '',
    `One server subscribed to ${int(d.channels)} channels; \`CLIENT KILL TYPE pubsub\` drops its subscriber socket. Measured in the server's process from the new socket's \`connect\` (so retry delays do not count) until an event on the last channel it subscribes is handled again (Redis acknowledges SUBSCRIBEs in order); events are published there every 2 ms. ${d.rounds} round(s), contender order rotated; median (min–max) in ms. The built-in resubscribes through ioredis' \`autoResubscribe\` (one SUBSCRIBE of every channel); this transport sends batches of 500, pipelined, and confirms each once Redis acknowledged it.`,
    '',
    '| Contender | Handling again (ms) | All acknowledged, `resubscribed` event (ms) | vs built-in |',
    '|---|---:|---:|---:|',
  ];
  const range = (x: { median: number; min: number; max: number }) => `${int(x.median)} (${int(x.min)}–${int(x.max)})`;
  for (const c of d.contenders) {
    out.push(`| ${c.label} | ${range(c.handling)} | ${c.acknowledged ? range(c.acknowledged) : '—'} | ${nest ? ratio(c.handling.median, nest.handling.median) : 'n/a'} |`);
  }
  return out;
}

function costSection(c: SectionRecord<CostResult>): string[] {
  const out = [
    '## 5. Cost',
    '',
    `Per subscriber process: Redis connections it opens (CLIENT LIST before/after), CPU and Redis commands while idle for ${c.data.idleSeconds} s (\`process.cpuUsage\` in 2 s buckets: the median bucket is the steady cost, the mean also counts V8's one-off GC burst ~8 s after any Node process starts; INFO commandstats delta), and RSS / heap after runs of 100 B events (GC forced before each reading; \`--expose-gc\`).`,
    '',
    '| Contender | Redis connections | Idle CPU, steady (ms per s) | Idle CPU, mean | Idle Redis commands/s | RSS before events | RSS after each run (MiB) | RSS after 1M events | Heap after (MiB) |',
    '|---|---|---:|---:|---|---:|---|---:|---:|',
  ];
  for (const x of c.data.contenders) {
    const runs = x.memory.afterRuns;
    const last = runs[runs.length - 1];
    out.push(
      `| ${x.label} | ${x.connections.count} (${x.connections.names.join(', ')}) | ${x.idle.cpuMsPerSecond.toFixed(2)} (${x.idle.cpuPercent.toFixed(2)}%) | ${x.idle.cpuMsPerSecondMean?.toFixed(2) ?? 'n/a'} | ${x.idle.commandsPerSecond.toFixed(2)}${
        Object.keys(x.idle.commands).length ? ` (${Object.entries(x.idle.commands).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''
      } | ${x.memory.before.rss.toFixed(0)} MiB | ${runs.map((r) => r.rss.toFixed(0)).join(' → ')} | ${last ? `${last.rss.toFixed(0)} MiB (${int(last.events)} events)` : 'n/a'} | ${last ? last.heapUsed.toFixed(1) : 'n/a'} |`,
    );
  }
  out.push('');
  out.push(
    `Growth across runs (RSS after the last run − after the first): ` +
      c.data.contenders
        .map((x) => {
          const r = x.memory.afterRuns;
          return r.length > 1 ? `${x.id} ${(r[r.length - 1]!.rss - r[0]!.rss).toFixed(1)} MiB (heap ${(r[r.length - 1]!.heapUsed - r[0]!.heapUsed).toFixed(1)} MiB)` : '';
        })
        .join(', ') +
      '.',
  );
  return out;
}

function profileSection(p: SectionRecord<ProfileResult>): string[] {
  const out = [
    '## 6. Where the subscriber spends its time',
    '',
    `\`node --cpu-prof --cpu-prof-interval ${p.data.intervalUs}\` on the subscriber process during one burst; only samples between the first and last event handled are counted. Self time; builtins such as \`JSON.parse\` are charged to the JavaScript function that calls them. Raw profiles: \`bench/results/profiles/\` (open in Chrome DevTools).`,
    '',
  ];
  for (const size of ['small', 'large'] as const) {
    out.push(`### ${SIZE_LABEL[size]} payload`, '');
    out.push('| Contender | ev/s | Share of time by code |', '|---|---:|---|');
    for (const x of p.data.profiles.filter((y) => y.size === size)) {
      out.push(`| ${x.contender} | ${int(x.rate)} | ${x.categories.filter((c) => c.percent >= 1).map((c) => `${c.name} ${c.percent}%`).join(', ')} |`);
    }
    out.push('');
    const nonRaw = p.data.profiles.filter((y) => y.size === size && y.contender !== 'raw');
    if (nonRaw.some((x) => x.inclusive?.length)) {
      out.push(`Inclusive time (the frame and everything it calls), ${SIZE_LABEL[size]}:`, '');
      out.push(`| Frame | ${nonRaw.map((x) => x.contender).join(' | ')} |`, `|---|${nonRaw.map(() => '---:').join('|')}|`);
      const frames = [...new Set(nonRaw.flatMap((x) => (x.inclusive ?? []).map((f) => f.frame)))];
      for (const frame of frames) {
        out.push(`| ${frame} | ${nonRaw.map((x) => { const f = x.inclusive?.find((i) => i.frame === frame); return f ? `${f.percent}%` : '—'; }).join(' | ')} |`);
      }
      out.push('');
    }
    for (const x of nonRaw) {
      out.push(`Top self time, ${x.contender}, ${SIZE_LABEL[size]}:`, '');
      out.push('| % | Function | Where |', '|---:|---|---|');
      for (const f of x.top.slice(0, 10)) out.push(`| ${f.percent} | \`${f.fn}\` | ${f.where} |`);
      out.push('');
    }
  }
  out.push('### Inside `MessageCodec.parse()`', '');
  out.push('ns per message, best of 7 rounds, same payloads (single process, no I/O):', '');
  out.push('| Step | 100 B | 4 KiB |', '|---|---:|---:|');
  const small = p.data.codec?.small ?? [];
  const large = p.data.codec?.large ?? [];
  for (const s of small) out.push(`| ${s.step} | ${int(s.ns)} | ${int(large.find((l) => l.step === s.step)?.ns)} |`);
  return out;
}

export function renderMarkdown(r: AllResults): string {
  const s = r.sections;
  const records = Object.entries(s).filter(([, v]) => v) as Array<[string, SectionRecord<unknown>]>;
  const machine = records[0]?.[1].machine;
  const out: string[] = ['# Benchmark results', ''];
  out.push(
    'Generated by `npm run bench` (bench/run.ts). Every contender is measured in the same run, on the same redis-server the bench starts itself (127.0.0.1, free port); ratios are computed within that run.',
    '',
  );
  out.push('| Section | Measured at | Duration | Mode |', '|---|---|---:|---|');
  for (const [name, rec] of records) out.push(`| ${name} | ${rec.at} | ${Math.round(rec.seconds)} s | ${rec.quick ? 'quick (BENCH_QUICK=1)' : 'full'} |`);
  out.push('');
  if (machine) out.push('## Machine', '', ...machineTable(machine), '', `Load average at start: ${machine.loadAvgAtStart.join(' / ')}. A 2-core machine runs Redis, the publisher and the subscriber at once: absolute numbers are noisy, the side-by-side ratios are what to read.`, '');
  const rows = targets(r);
  if (rows.length) {
    out.push('## Targets', '', '| Target | Measured | Verdict |', '|---|---|---|');
    for (const row of rows) out.push(`| ${row.target} | ${row.measured} | ${row.ok === null ? 'no target' : verdict(row.ok)} |`);
    out.push('');
    if (rows.some((x) => x.ok === false)) out.push('Missed targets are explained in section 6 (profiles).', '');
  }
  if (s.throughput) out.push(...throughputSection(s.throughput), '');
  if (s.telemetry) out.push(...telemetrySection(s.telemetry), '');
  if (s.latency) out.push(...latencySection(s.latency), '');
  if (s.rpc) out.push(...rpcSection(s.rpc), '');
  if (s.recovery) out.push(...recoverySection(s.recovery), '');
  if (s.resubscribe) out.push(...resubscribeSection(s.resubscribe), '');
  if (s.cost) out.push(...costSection(s.cost), '');
  if (s.profile) out.push(...profileSection(s.profile), '');
  if (s.delivery) out.push(...deliverySection(s.delivery.data), '');
  if (s.cluster) out.push(...clusterSection(s.cluster.data), '');
  out.push(...methodNotes());
  return out.join('\n') + '\n';
}

function methodNotes(): string[] {
  return [
    '## Method',
    '',
    '- Contenders: raw ioredis (one subscriber connection, `JSON.parse` in the `message` listener: the ceiling, Nest never loaded); Nest\'s built-in `Transport.REDIS` (`ServerRedis`) in a real microservice (`NestFactory.createMicroservice`, `@EventPattern` handler); this transport (`RedisPubSubServer`) with defaults, and with `heartbeat: { intervalMs: 500 }`. The Nest contenders run the same controller.',
    '- Every contender receives the same bytes: the Nest envelope `{"pattern":"bench.event","data":{...}}` on channel `bench.event`, exactly 100 B or 4 KiB, cycling through 1,024 distinct pre-built messages, published by one raw ioredis connection in pipelined batches of 500.',
    '- Publisher, subscriber and parent are separate processes (`child_process.fork`); the subscriber times its first and last handled event and reports over IPC. A fresh subscriber process per run, with its own warm-up; contender order rotates per round.',
    '- CPU pinning (`taskset`, off with `BENCH_PIN=0`): the subscriber under test runs alone on the last core; Redis, the publisher and the bench process share the others. Recovery subscribers are not pinned.',
    '- The bench redis-server runs with `client-output-buffer-limit pubsub 0 0 0`, so a subscriber slower than the publisher is measured draining its backlog instead of being disconnected by Redis.',
    '- Cross-process timestamps use `process.hrtime` (CLOCK_MONOTONIC, one clock for every process of the machine).',
    '- Recovery, restart: Redis is SIGKILLed and started on the same port 2 s later; "Redis back" is the first TCP connect that succeeds (polled every 5 ms).',
    '- Reproduce: `npm run bench` (all sections, ~9 min on 2 cores), `npm run bench -- throughput` (one or more sections: throughput telemetry latency rpc recovery resubscribe cost profile), `BENCH_QUICK=1 npm run bench` (~1 min smoke run, written to bench/results/quick/).',
    '',
  ];
}
