import { CLUSTER_FAULTS, type ClusterResult } from '../sections/cluster.js';
import { median } from './stats.js';

const int = (n: number | null) => (n === null || !Number.isFinite(n) ? 'n/a' : Math.round(n).toLocaleString('en-US'));

const FAULT_LABEL: Record<(typeof CLUSTER_FAULTS)[number], string> = {
  kill: '`kill -9` of a primary',
  failover: '`CLUSTER FAILOVER`',
  stall: 'primary hung (`SIGSTOP`)',
  'migrate-target-first': 'slot migrated, target told first',
  'migrate-source-first': 'slot migrated, source told first',
  'migrate-destination-late': 'slot migrated, destination told late',
};

export function clusterSection(c: ClusterResult): string[] {
  const out = ['## Redis Cluster: sharded pub/sub through faults', ''];
  out.push(
    `3 primaries + 3 replicas (\`cluster-node-timeout\` ${c.nodeTimeoutMs} ms), ${c.rate.toLocaleString('en-US')} sequence-numbered SPUBLISH/s round-robin over channels on all three shards; the fault hits one shard. ` +
      `Stall: ${c.stallMs / 1000} s; destination told ${c.destinationDelayMs / 1000} s late. Deaf: an affected channel handled nothing ${c.deafAfterMs / 1000} s after the cluster was stable again. ` +
      `Times are medians (min-max) over ${c.trials} trial(s); "from owner" counts from the promotion (or the destination claiming the slot). Attempts: the subscriber process's connection attempts per second from the fault to handling again.`,
    '',
  );
  out.push('| Fault | Contender | deaf | handling again after fault, ms | from owner, ms | lost | duplicates | attempts/s |', '|---|---|---:|---:|---:|---:|---:|---:|');
  for (const fault of CLUSTER_FAULTS) {
    for (const contender of c.contenders) {
      const rows = c.outcomes.filter((o) => o.fault === fault && o.contender === contender.id);
      if (!rows.length) continue;
      const ok = rows.filter((o) => o.recoveryMs !== null);
      const range = (values: number[]) => (values.length ? `${int(median(values))} (${int(Math.min(...values))}-${int(Math.max(...values))})` : 'n/a');
      out.push(
        `| ${FAULT_LABEL[fault]} | ${contender.label} | ${rows.filter((o) => o.deaf).length} of ${rows.length} | ${range(ok.map((o) => o.recoveryMs!))} | ${range(ok.map((o) => o.fromOwnerMs!))} | ` +
          `${rows.map((o) => o.lost).join(', ')} | ${rows.map((o) => o.duplicates).join(', ')} | ${range(rows.map((o) => o.attemptsPerSecond))} |`,
      );
    }
  }
  out.push('', 'Throughput, 100 B messages pipelined by raw ioredis to one subscriber, median of the rounds after a warm-up (Redis CPU: user + sys summed over every node involved, per message):', '');
  out.push('| Path | messages/s | Redis CPU µs/message | nodes |', '|---|---:|---:|---:|');
  for (const t of c.throughput) out.push(`| ${t.label} | ${int(t.rate)} | ${t.redisCpuUsPerMessage.toFixed(2)} | ${t.nodes} |`);
  return out;
}
