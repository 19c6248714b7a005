import { ClusterLink } from './cluster/cluster-link.js';
import type { ResolvedOptions } from './options.js';
import { PubSubLink, type MessageSink } from './pubsub-link.js';
import type { TransportLink } from './transport-link.js';

/** One Redis (or Sentinel): a PubSubLink; `cluster`: a ClusterLink of one PubSubLink per shard in use. */
export function createLink(kind: 'server' | 'client', options: ResolvedOptions, sink: MessageSink): TransportLink {
  return options.cluster ? new ClusterLink(kind, options, sink) : new PubSubLink(kind, options, sink);
}
