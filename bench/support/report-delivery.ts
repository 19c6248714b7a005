import type { DeliveryResult } from '../sections/delivery.js';

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');

/** Durable publish may cost at most 2× a plain publish in throughput. */
export function deliveryTarget(d: DeliveryResult): { target: string; measured: string; ok: boolean } {
  const cost = 1 / d.throughput.ratio;
  return { target: 'Durable publish costs ≤ 2× a plain publish (throughput)', measured: `${cost.toFixed(2)}×`, ok: cost <= 2 };
}

export function deliverySection(d: DeliveryResult): string[] {
  const out = ['## Delivery guarantees: durable vs plain events', '', `${d.note}.`, ''];
  out.push(`Throughput (${int(d.throughput.events)} events per run, ${d.throughput.rounds} round(s), median; every emit() resolved):`, '');
  out.push('| | events/s | cost vs plain |', '|---|---:|---:|');
  out.push(`| plain emit() (PUBLISH) | ${int(d.throughput.plain.publishRate)} | 1.00× |`);
  out.push(`| durable emit() (script: XADD + PUBLISH) | ${int(d.throughput.durable.publishRate)} | ${(1 / d.throughput.ratio).toFixed(2)}× |`, '');
  out.push(`Latency emit() -> handler at ${int(d.latency.rate)} events/s (${int(d.latency.events)} events each, ms):`, '');
  out.push('| | p50 | p90 | p99 | p99.9 | max |', '|---|---:|---:|---:|---:|---:|');
  for (const kind of ['plain', 'durable'] as const) {
    const l = d.latency[kind];
    out.push(`| ${kind} | ${ms(l.p50)} | ${ms(l.p90)} | ${ms(l.p99)} | ${ms(l.p999)} | ${ms(l.max)} |`);
  }
  out.push('', 'Redis memory per retained event (`MEMORY USAGE` of the stream / events):', '', '| data bytes | events | stream bytes | bytes per event | used_memory delta per event |', '|---:|---:|---:|---:|---:|');
  for (const m of d.memory) out.push(`| ${m.dataBytes} | ${int(m.events)} | ${int(m.streamBytes)} | ${int(m.bytesPerEvent)} | ${int(m.usedMemoryDeltaPerEvent)} |`);
  out.push('', 'Time to recover N events missed while the subscriber was cut off (`recovered.durationMs`; and from `resubscribed` to the last one handled):', '', '| missed | recovery ms | resubscribed -> all handled ms |', '|---:|---:|---:|');
  for (const r of d.recovery) out.push(`| ${int(r.missed)} | ${int(r.recoveryMs)} | ${int(r.reconnectToAllHandledMs)} |`);
  return out;
}
