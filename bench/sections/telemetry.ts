import { PUBSUB, PUBSUB_OTEL, PUBSUB_WITHOUT_TELEMETRY } from '../support/contenders.js';
import type { BenchContext } from '../support/context.js';
import { spread, type Spread } from '../support/stats.js';
import { buildWithoutTelemetry } from '../support/without-telemetry.js';
import { measureRounds, type RunOutcome } from './throughput.js';

export interface TelemetryResult {
  messages: number;
  warmup: number;
  rounds: number;
  contenders: Array<{ id: string; label: string; rate: Spread; cpu: Spread; runsDetail: RunOutcome[] }>;
  /** Per round, the feature present but off (`pubsub`, no provider registered) over the control build: ev/CPU-s and ev/s. */
  offVsWithout: { cpu: Spread; rate: Spread };
  /** Per round, providers registered (`pubsub-otel`) over off. */
  onVsOff: { cpu: Spread; rate: Spread };
}

/**
 * What OpenTelemetry costs at 100 B: the transport with `@opentelemetry/api` installed and no
 * provider registered (the feature off), against the same library compiled without the feature
 * (the control), and with providers registered (no-op exporters). Contenders alternate within each
 * round (order rotated); ratios are paired per round, in events per CPU-second of the subscriber.
 */
export async function telemetry(ctx: BenchContext): Promise<TelemetryResult> {
  buildWithoutTelemetry();
  ctx.log('telemetry: control build written to dist/without-telemetry/');
  const messages = ctx.quick ? 40_000 : 250_000;
  const warmup = ctx.quick ? 10_000 : 30_000;
  const rounds = ctx.quick ? 2 : 7;
  const contenders = [PUBSUB_WITHOUT_TELEMETRY, PUBSUB, PUBSUB_OTEL];
  const runs = await measureRounds(ctx, contenders, ['small'], rounds, { small: messages, large: 0 }, { small: warmup, large: 0 });
  const of = (id: string) => runs.get(id)!.small;
  const paired = (a: RunOutcome[], b: RunOutcome[]) => ({
    cpu: spread(a.map((x, i) => x.cpuRate / b[i]!.cpuRate)),
    rate: spread(a.map((x, i) => x.rate / b[i]!.rate)),
  });
  return {
    messages,
    warmup,
    rounds,
    contenders: contenders.map((c) => ({
      id: c.id,
      label: c.label,
      rate: spread(of(c.id).map((o) => o.rate)),
      cpu: spread(of(c.id).map((o) => o.cpuRate)),
      runsDetail: of(c.id),
    })),
    offVsWithout: paired(of(PUBSUB.id), of(PUBSUB_WITHOUT_TELEMETRY.id)),
    onVsOff: paired(of(PUBSUB_OTEL.id), of(PUBSUB.id)),
  };
}
