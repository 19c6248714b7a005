export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(ascending: ArrayLike<number>, p: number): number {
  const n = ascending.length;
  if (n === 0) return NaN;
  const rank = Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
  return ascending[rank]!;
}

export function median(values: number[]): number {
  return percentile(sorted(values), 50);
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function spread(values: number[]): Spread {
  const s = sorted(values);
  return { median: percentile(s, 50), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, runs: values };
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export function latencySummary(values: ArrayLike<number>): LatencySummary {
  const s = values instanceof Float64Array ? values.sort() : sorted(values);
  return {
    count: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    p999: percentile(s, 99.9),
    max: s[s.length - 1] ?? NaN,
  };
}
