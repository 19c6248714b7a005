/**
 * What every contender's handlers call, and the IPC commands that read it. Shared by the raw
 * subscriber and the Nest apps; no Nest import here, so the raw process stays Nest-free.
 */
import { emitToParent, nowNs, type Handlers } from '../support/ipc.js';
import { latencySummary } from '../support/stats.js';

let count = 0;
let target = Infinity;
let firstNs = 0;
let lastNs = 0;
let onTarget: (() => void) | undefined;
let latRun = -1;
let latencies: Float64Array | undefined;
/** latency from the actual send (intended + publisher lateness): what Redis + the transport add */
let serviceLatencies: Float64Array | undefined;
let latCount = 0;
let lastLatRecvNs = 0;
let reportMarkers = false;

export function setReportMarkers(on: boolean): void {
  reportMarkers = on;
}

export function onEvent(data: any): void {
  const c = ++count;
  if (c === 1) firstNs = nowNs();
  if (data !== null && data.r === latRun && latencies) {
    const now = nowNs();
    if (latCount < latencies.length) {
      serviceLatencies![latCount] = (now - data.t) / 1e6 - data.a / 1e3;
      latencies[latCount++] = (now - data.t) / 1e6;
    }
    lastLatRecvNs = now;
  }
  if (c === target) {
    lastNs = nowNs();
    onTarget?.();
  }
}

export function onMarker(data: any): void {
  if (reportMarkers) emitToParent('marker', { seq: data?.m, sentNs: data?.t, recvNs: nowNs() });
}

export const sinkHandlers: Handlers = {
  /** Resets the counter for the next `n` events (and, with `latencyRun`, records that run's latencies). */
  arm({ n, latencyRun }: { n: number; latencyRun?: number }) {
    count = 0;
    firstNs = lastNs = 0;
    target = n;
    onTarget = undefined;
    latRun = latencyRun ?? -1;
    latencies = latencyRun === undefined ? undefined : new Float64Array(n);
    serviceLatencies = latencyRun === undefined ? undefined : new Float64Array(n);
    latCount = 0;
    lastLatRecvNs = 0;
    return true;
  },
  /** Resolves once the armed number of events was handled: { count, firstNs, lastNs }. */
  wait() {
    if (count >= target) return { count, firstNs, lastNs };
    return new Promise((resolve) => {
      onTarget = () => {
        onTarget = undefined;
        resolve({ count, firstNs, lastNs });
      };
    });
  },
  /** Progress of the current run (for timeouts and lost messages). */
  progress() {
    return { count, firstNs, lastNs: lastNs || nowNs() };
  },
  /** Summary of the latencies (ms) recorded for the current latency run, and when the last one arrived. */
  latencies({ values = false }: { values?: boolean } = {}) {
    const recorded = latencies ? latencies.slice(0, latCount) : new Float64Array();
    const service = serviceLatencies ? serviceLatencies.slice(0, latCount) : new Float64Array();
    // µs resolution is plenty and keeps the IPC message small
    const round = (a: Float64Array) => Array.from(a, (v) => Math.round(v * 1000) / 1000);
    return {
      summary: latencySummary(recorded),
      service: latencySummary(service),
      lastRecvNs: lastLatRecvNs,
      ...(values ? { values: round(recorded), serviceValues: round(service) } : {}),
    };
  },
};
