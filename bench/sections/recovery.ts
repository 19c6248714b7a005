import { connect as netConnect } from 'node:net';
import { Redis } from 'ioredis';
import { FaultProxy } from '../../test/harness/fault-proxy.js';
import { startRedis, type RedisServerHandle } from '../../test/harness/redis.js';
import { delay } from '../../test/harness/wait.js';
import { RECOVERY_CONTENDERS, type Contender } from '../support/contenders.js';
import { startApp, type BenchContext } from '../support/context.js';
import { nowNs } from '../support/ipc.js';
import { MARKER_CHANNEL, markerMessage } from '../support/payloads.js';
import { Worker } from '../support/worker.js';

export const FAULTS = ['blackhole', 'reset', 'restart', 'reroute', 'stall', 'partition', 'path-partition'] as const;
export type Fault = (typeof FAULTS)[number];

const MARKER_INTERVAL_MS = 50;
const RESTART_DOWN_MS = 2_000;
/** Redis frozen with SIGSTOP this long (a fork, a slow script, a paused VM): longer than any default heartbeat verdict. */
const STALL_MS = 5_000;
/** A partition that heals after this long; bytes are held both ways meanwhile, as TCP retransmission would. */
const PARTITION_MS = 8_000;
/** After recovery: time for late deliveries (a healed partition, a draining socket) before events are counted. */
const SETTLE_MS = 3_000;

export interface TrialOutcome {
  fault: Fault;
  trial: number;
  contender: string;
  /** fault -> first transport event that shows the contender noticed (ms); null: never noticed */
  detectMs: number | null;
  detectEvent: string | null;
  /** fault -> first marker published after the fault handled by the contender (ms); null: no recovery in the window */
  recoveryMs: number | null;
  /** restart only: Redis accepting connections again -> first marker handled (ms) */
  fromBackMs: number | null;
  /** restart only: fault -> Redis accepting connections again (ms) */
  downMs: number | null;
  /** Markers Redis executed from 0.5 s before the fault until the count window ended that the contender never handled. */
  lost: number;
  /** Markers of that window handled more than once. */
  duplicates: number;
  /** Markers of that window Redis executed (the denominator of `lost`). */
  published: number;
  events: Array<{ name: string; atMs: number }>;
}

export interface RecoveryResult {
  trials: number;
  windowMs: number;
  markerIntervalMs: number;
  contenders: Array<{ id: string; label: string; heartbeat: { intervalMs: number; timeoutMs: number } | null }>;
  outcomes: TrialOutcome[];
}

/** Publishes a marker every 50 ms on each server, straight to Redis (no proxy); skips while disconnected. */
class MarkerPublisher {
  /** Markers the first server executed: sequence -> send time (ns). */
  readonly published = new Map<number, number>();
  private readonly clients: Redis[];
  private timer?: NodeJS.Timeout;
  private seq = 0;

  constructor(servers: RedisServerHandle[]) {
    this.clients = servers.map((s) => {
      // No retries of a command: a marker is either executed once or counted as never published.
      const c = new Redis({
        host: s.host,
        port: s.port,
        retryStrategy: () => 10,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
      });
      c.on('error', () => undefined);
      return c;
    });
  }

  start(): void {
    this.timer = setInterval(() => {
      const seq = ++this.seq;
      const sentNs = nowNs();
      const message = markerMessage(seq, sentNs);
      this.clients.forEach((c, i) => {
        if (c.status !== 'ready') return;
        c.publish(MARKER_CHANNEL, message).then(
          () => (i === 0 ? void this.published.set(seq, sentNs) : undefined),
          () => undefined,
        );
      });
    }, MARKER_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const c of this.clients) c.disconnect();
  }
}

/** Resolves with the time (ns) a TCP connection to `port` first succeeds, polling every 5 ms. */
function firstAccept(port: number, until: number): Promise<number | null> {
  return new Promise((resolve) => {
    const attempt = () => {
      if (Date.now() > until) return resolve(null);
      const socket = netConnect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        const at = nowNs();
        socket.destroy();
        resolve(at);
      });
      socket.once('error', () => {
        socket.destroy();
        setTimeout(attempt, 5);
      });
    };
    attempt();
  });
}

interface Participant {
  contender: Contender;
  proxy: FaultProxy;
  app: Worker;
  markers: Array<{ seq: number; sentNs: number; recvNs: number }>;
  events: Array<{ name: string; t: number; args: unknown }>;
}

/** Events that show a contender noticed the fault (ours: heartbeat/probe verdicts or a lost socket; built-in: ioredis events). */
const DETECT_EVENTS = new Set([
  'heartbeat-timeout',
  'suspect',
  'probe-failed',
  'status:reconnecting',
  'status:disconnected',
  'sub:close',
  'sub:reconnecting',
  'sub:end',
]);

/** One fault, all contenders side by side, each behind its own FaultProxy to the same redis-server. */
async function trial(ctx: BenchContext, fault: Fault, trialNo: number, contenders: Contender[], windowMs: number): Promise<TrialOutcome[]> {
  const main = await startRedis();
  ctx.trackPid(main.pid);
  const second = fault === 'reroute' ? await startRedis() : undefined;
  if (second) ctx.trackPid(second.pid);
  const markers = new MarkerPublisher(second ? [main, second] : [main]);
  const participants: Participant[] = [];
  try {
    for (const contender of contenders) {
      const proxy = await FaultProxy.start({ host: main.host, port: main.port });
      const app = startApp(contender, '127.0.0.1', proxy.port, { reportMarkers: true }, [], 'all');
      const p: Participant = { contender, proxy, app, markers: [], events: [] };
      app.on('marker', (m) => p.markers.push(m));
      app.on('transport', (e) => p.events.push(e));
      participants.push(p);
    }
    await Promise.all(participants.map((p) => p.app.waitReady()));
    markers.start();
    // Healthy first: every contender handles markers. Then a random pause, so the fault lands at a
    // random phase of the heartbeat cycle.
    const healthyBy = Date.now() + 15_000;
    while (participants.some((p) => p.markers.length < 3)) {
      if (Date.now() > healthyBy) throw new Error(`recovery ${fault}: not every contender receives markers before the fault`);
      await delay(20);
    }
    await delay(500 + Math.random() * 2_000);

    const faultNs = nowNs();
    let backNs: number | null = null;
    let endFault: (() => void | Promise<void>) | undefined;
    switch (fault) {
      case 'blackhole':
        for (const p of participants) p.proxy.blackhole();
        break;
      case 'reset':
        for (const p of participants) p.proxy.reset();
        break;
      case 'restart': {
        await main.kill('SIGKILL');
        await delay(RESTART_DOWN_MS);
        const accepted = firstAccept(main.port, Date.now() + 15_000);
        await main.start();
        ctx.trackPid(main.pid);
        backNs = await accepted;
        break;
      }
      case 'reroute':
        await Promise.all(participants.map((p) => p.proxy.reroute({ host: second!.host, port: second!.port })));
        break;
      case 'stall':
        await main.kill('SIGSTOP');
        endFault = () => main.kill('SIGCONT');
        break;
      case 'partition':
      case 'path-partition': {
        // partition: the network is cut, new connections too; path-partition: only the existing connections' path.
        const partitions = participants.map((p) => p.proxy.partition({ newConnections: fault === 'partition' }));
        endFault = () => partitions.forEach((partition) => partition.heal());
        break;
      }
    }
    if (endFault) {
      await delay(fault === 'stall' ? STALL_MS : PARTITION_MS);
      await endFault();
    }

    const recovered = (p: Participant) => p.markers.find((m) => m.sentNs > faultNs && m.recvNs > faultNs);
    const deadline = faultNs + windowMs * 1e6;
    while (nowNs() < deadline && participants.some((p) => !recovered(p))) await delay(20);
    // Longer, so late deliveries and transport events (resubscribed, a drain ending) are in.
    await delay(SETTLE_MS);
    // Markers sent in the last second may still be in flight: they are not counted.
    const countFrom = faultNs - 500e6;
    const countUntil = nowNs() - 1_000e6;
    const window = [...markers.published].filter(([, sentNs]) => sentNs >= countFrom && sentNs <= countUntil).map(([seq]) => seq);

    return participants.map((p) => {
      const first = recovered(p);
      const detect = p.events.find((e) => e.t > faultNs && DETECT_EVENTS.has(e.name));
      const handled = new Map<number, number>();
      for (const m of p.markers) handled.set(m.seq, (handled.get(m.seq) ?? 0) + 1);
      return {
        fault,
        trial: trialNo,
        contender: p.contender.id,
        detectMs: detect ? (detect.t - faultNs) / 1e6 : null,
        detectEvent: detect?.name ?? null,
        recoveryMs: first ? (first.recvNs - faultNs) / 1e6 : null,
        fromBackMs: first && backNs !== null ? (first.recvNs - backNs) / 1e6 : null,
        downMs: backNs !== null ? (backNs - faultNs) / 1e6 : null,
        lost: window.filter((seq) => !handled.has(seq)).length,
        duplicates: window.filter((seq) => (handled.get(seq) ?? 0) > 1).length,
        published: window.length,
        events: p.events.filter((e) => e.t > faultNs).map((e) => ({ name: e.name, atMs: Math.round((e.t - faultNs) / 1e5) / 10 })),
      };
    });
  } finally {
    markers.stop();
    await Promise.all(participants.map((p) => p.app.stop(2_000)));
    await Promise.all(participants.map((p) => p.proxy.close()));
    await Promise.all([main.stop(), second?.stop()]);
  }
}

export async function recovery(ctx: BenchContext, contenders: Contender[] = RECOVERY_CONTENDERS): Promise<RecoveryResult> {
  const trials = ctx.quick ? 1 : 3;
  const windowMs = ctx.quick ? 10_000 : 30_000;
  const outcomes: TrialOutcome[] = [];
  for (let t = 1; t <= trials; t++) {
    // Up to four faults run side by side, each on its own redis-server(s), proxies and processes
    // (they share only the CPU, idle but for 20 markers/s): less wall time for the 30 s windows.
    const results: TrialOutcome[] = [];
    for (let i = 0; i < FAULTS.length; i += 4) {
      const batch = await Promise.all(FAULTS.slice(i, i + 4).map((fault) => trial(ctx, fault, t, contenders, windowMs)));
      results.push(...batch.flat());
    }
    for (const r of results) {
      outcomes.push(r);
      ctx.log(
        `recovery ${r.fault} #${t} ${r.contender}: detect ${r.detectMs === null ? '-' : `${Math.round(r.detectMs)} ms (${r.detectEvent})`}, ` +
          (r.recoveryMs === null ? `no recovery within ${windowMs / 1000} s` : `handling again after ${Math.round(r.recoveryMs)} ms`) +
          (r.fromBackMs !== null ? ` (${Math.round(r.fromBackMs)} ms after Redis was back)` : '') +
          `; lost ${r.lost}/${r.published}, duplicates ${r.duplicates}`,
      );
    }
  }
  return {
    trials,
    windowMs,
    markerIntervalMs: MARKER_INTERVAL_MS,
    contenders: contenders.map((c) => ({
      id: c.id,
      label: c.label,
      heartbeat:
        c.app.kind === 'pubsub'
          ? { intervalMs: (c.app.pubsub?.heartbeat || {}).intervalMs ?? 2_000, timeoutMs: (c.app.pubsub?.heartbeat || {}).timeoutMs ?? 2_000 }
          : null,
    })),
    outcomes,
  };
}
