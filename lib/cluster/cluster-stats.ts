import type { RedisPubSubStatus } from '../constants.js';
import type { ConnectionRole, ConnectionStats } from '../managed-connection.js';

/** Per shard, in `getStats().cluster`. */
export interface ShardStats {
  /** The primary's `host:port`. */
  node: string;
  /** The slots it serves, as ranges (`0-5460`). */
  slots: string;
  state: RedisPubSubStatus;
  connections: Record<ConnectionRole, Pick<ConnectionStats, 'state' | 'reconnects' | 'heartbeatRttMs'>>;
  /** Shard channels subscribed here (the probe's excluded), and those not acknowledged yet. */
  channels: number;
  missing: string[];
}

export interface ClusterStats {
  shards: ShardStats[];
  /** Connections open to the cluster: a subscriber and a publisher per shard in use. */
  connections: number;
  /** Slot map reads that got an answer so far, and when the last one did. */
  refreshes: number;
  lastRefreshAt: number | null;
}
