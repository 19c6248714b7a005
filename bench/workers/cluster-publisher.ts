/**
 * The cluster section's publisher, in its own process (so the subscriber's process counts only its
 * own connection attempts): sequence-numbered SPUBLISHes at a steady rate, round-robin over the
 * channels, through a raw ioredis `Cluster`. Each message is a Nest envelope
 * `{"pattern":<channel>,"data":{"seq":n,"t":<send time, CLOCK_MONOTONIC ns>}}`.
 *
 * It is the reference publisher, not a contender: it refreshes its slot map every second and gives
 * a command 1 s, so it finds a new primary by itself and a hung one does not block it. A message
 * counts as published once SPUBLISH answered; acknowledgements are pushed to the parent every 10 ms.
 */
import { Cluster } from 'ioredis';
import { config, emitToParent, nowNs, serve } from '../support/ipc.js';

export interface ClusterPublisherConfig {
  seeds: { host: string; port: number }[];
  channels: string[];
  /** messages per second, all channels together */
  rate: number;
}

const cfg = config<ClusterPublisherConfig>();
const cluster = new Cluster(cfg.seeds, {
  lazyConnect: true,
  slotsRefreshInterval: 1_000,
  redisOptions: { commandTimeout: 1_000 },
});
cluster.on('error', () => undefined);
cluster.on('node error', () => undefined);

let timer: NodeJS.Timeout | undefined;
let seq = 0;
let rejected = 0;
let acks: Array<[seq: number, sentNs: number]> = [];
const rejections = new Map<string, number>();

function publishOne(): void {
  const n = seq++;
  const channel = cfg.channels[n % cfg.channels.length]!;
  const sentNs = nowNs();
  const message = `{"pattern":${JSON.stringify(channel)},"data":{"seq":${n},"t":${sentNs}}}`;
  cluster.spublish(channel, message).then(
    () => void acks.push([n, sentNs]),
    (error: Error) => {
      rejected++;
      const key = error.message.slice(0, 60);
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

cluster.connect().then(
  () => emitToParent('ready', { pid: process.pid }),
  (error: unknown) => {
    emitToParent('fatal', error instanceof Error ? (error.stack ?? error.message) : String(error));
    setTimeout(() => process.exit(1), 100);
  },
);
