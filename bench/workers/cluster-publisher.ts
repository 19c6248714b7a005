/**
 * The cluster section's publisher, in its own process (so the subscriber's process counts only its
 * own connection attempts): sequence-numbered messages `{ seq, t }` (t: send time, CLOCK_MONOTONIC
 * ns) at a steady rate, round-robin over the channels, as Nest envelopes
 * `{"pattern":<channel>,"data":{...}}`. A message counts as published once it is acknowledged;
 * acknowledgements are pushed to the parent every 10 ms.
 *  - raw:    SPUBLISH through a raw ioredis `Cluster`: the reference publisher. It refreshes its
 *            slot map every second and gives a command 1 s, so it finds a new primary by itself and
 *            a hung one does not block it.
 *  - pubsub: `RedisPubSubClient({ cluster: { nodes } }).emit()` (defaults), acknowledged when the
 *            emit completes.
 */
import { Cluster } from 'ioredis';
import { lastValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../../lib/index.js';
import { config, emitToParent, nowNs, serve } from '../support/ipc.js';

export type ClusterPublisherKind = 'raw' | 'pubsub';

export interface ClusterPublisherConfig {
  kind: ClusterPublisherKind;
  seeds: { host: string; port: number }[];
  channels: string[];
  /** messages per second, all channels together */
  rate: number;
}

const cfg = config<ClusterPublisherConfig>();

interface Publisher {
  connect(): Promise<unknown>;
  publish(channel: string, data: { seq: number; t: number }): Promise<unknown>;
}

function rawPublisher(): Publisher {
  const cluster = new Cluster(cfg.seeds, {
    lazyConnect: true,
    slotsRefreshInterval: 1_000,
    redisOptions: { commandTimeout: 1_000 },
  });
  cluster.on('error', () => undefined);
  cluster.on('node error', () => undefined);
  return {
    connect: () => cluster.connect(),
    publish: (channel, data) => cluster.spublish(channel, JSON.stringify({ pattern: channel, data })),
  };
}

function pubsubPublisher(): Publisher {
  const client = new RedisPubSubClient({ cluster: { nodes: cfg.seeds } });
  return {
    connect: () => client.connect(),
    publish: (channel, data) => lastValueFrom(client.emit(channel, data), { defaultValue: undefined }),
  };
}

const publisher = cfg.kind === 'pubsub' ? pubsubPublisher() : rawPublisher();

let timer: NodeJS.Timeout | undefined;
let seq = 0;
let rejected = 0;
let acks: Array<[seq: number, sentNs: number]> = [];
const rejections = new Map<string, number>();

function publishOne(): void {
  const n = seq++;
  const channel = cfg.channels[n % cfg.channels.length]!;
  const sentNs = nowNs();
  publisher.publish(channel, { seq: n, t: sentNs }).then(
    () => void acks.push([n, sentNs]),
    (error: unknown) => {
      rejected++;
      const key = (error instanceof Error ? error.message : String(error)).slice(0, 60);
      rejections.set(key, (rejections.get(key) ?? 0) + 1);
    },
  );
}

serve({
  start() {
    const startNs = nowNs();
    timer = setInterval(() => {
      const due = Math.floor(((nowNs() - startNs) / 1e9) * cfg.rate);
      while (seq < due) publishOne();
      if (acks.length) {
        emitToParent('acks', acks);
        acks = [];
      }
    }, 10);
    return true;
  },
  stop() {
    clearInterval(timer);
    if (acks.length) emitToParent('acks', acks);
    acks = [];
    return { sent: seq, rejected, rejections: Object.fromEntries(rejections) };
  },
  exit() {
    setImmediate(() => process.exit(0));
    return true;
  },
});

publisher.connect().then(
  () => emitToParent('ready', { pid: process.pid }),
  (error: unknown) => {
    emitToParent('fatal', error instanceof Error ? (error.stack ?? error.message) : String(error));
    setTimeout(() => process.exit(1), 100);
  },
);
