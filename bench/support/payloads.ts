/**
 * The exact bytes every contender receives: Nest's event envelope
 * `{"pattern":"bench.event","data":{...}}` on channel `bench.event`, padded to an exact size.
 * A pool of distinct messages (deterministic) is cycled through, so no contender gets one
 * string over and over.
 */
export const EVENT_CHANNEL = 'bench.event';
export const MARKER_CHANNEL = 'bench.marker';
export const RPC_PATTERN = 'bench.rpc';
/** The i-th of the many channels one server subscribes to in the resubscribe section. */
export const manyChannel = (i: number) => `bench.many.${i}`;

export const SIZES = { small: 100, large: 4096 } as const;
export type SizeName = keyof typeof SIZES;

function envelope(data: Record<string, unknown>): string {
  return JSON.stringify({ pattern: EVENT_CHANNEL, data });
}

/** Pads `data.pad` so the envelope is exactly `bytes` long (ASCII only, so chars = bytes). */
export function padTo(bytes: number, data: Record<string, unknown>): string {
  const base = envelope({ ...data, pad: '' });
  const missing = bytes - base.length;
  if (missing < 0) throw new Error(`payload of ${base.length} bytes does not fit in ${bytes}`);
  return envelope({ ...data, pad: 'x'.repeat(missing) });
}

export function eventMessage(size: SizeName, i: number): string {
  if (size === 'small') {
    return padTo(SIZES.small, { id: 100_000 + i, kind: 'order', user: `u-${1000 + (i % 9000)}`, amount: 1250 + (i % 100) });
  }
  // A realistic nested document: an order with line items (depth 4), padded to 4 KiB.
  const items = [];
  for (let k = 0; k < 40; k++) {
    items.push({ sku: `SKU-${(i * 40 + k) % 100_000}`, qty: 1 + ((i + k) % 5), price: 9.99 + k, tags: ['a', 'b'] });
  }
  return padTo(SIZES.large, {
    id: 100_000 + i,
    type: 'order.created',
    user: { id: `u-${1000 + (i % 9000)}`, email: `user${i % 9000}@example.com`, tier: 'gold' },
    items,
  });
}

export function eventPool(size: SizeName, count = 1024): string[] {
  const pool: string[] = [];
  for (let i = 0; i < count; i++) pool.push(eventMessage(size, i));
  return pool;
}

/**
 * A latency probe of exactly 100 bytes: run id, sequence, intended send time `t` (ns,
 * CLOCK_MONOTONIC) and `a`, how late (µs) the publisher actually sent it.
 */
export function latencyMessage(run: number, seq: number, intendedNs: number, lateUs: number): string {
  return padTo(SIZES.small, { r: run, s: seq, t: intendedNs, a: lateUs });
}

export function markerMessage(seq: number, sentNs: number): string {
  return JSON.stringify({ pattern: MARKER_CHANNEL, data: { m: seq, t: sentNs } });
}
