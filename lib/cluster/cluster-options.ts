import type { ClusterNode, ClusterOptions, RedisOptions } from 'ioredis';
import { globToRegExp } from './glob.js';

/** `cluster` option: Redis Cluster mode (sharded pub/sub), for servers and clients alike. */
export interface RedisPubSubClusterOptions extends Pick<ClusterOptions, 'redisOptions' | 'natMap' | 'slotsRefreshInterval' | 'slotsRefreshTimeout'> {
  /** Seed nodes, as ioredis' `Cluster` takes them (`6379`, `'host:port'`, `{ host, port }`): any few nodes of the cluster. */
  nodes: ClusterNode[];
  /**
   * Channels (names or Redis globs) reached with classic SUBSCRIBE/PUBLISH rather than sharded
   * pub/sub: those that `psubscribe` handlers listen to, and those shared with publishers or
   * subscribers that use plain PUBLISH (Nest's `Transport.REDIS`, redis-cli). Redis broadcasts
   * every classic PUBLISH to every node of the cluster. Replies to requests on a global channel go
   * to `<channel>.reply` classically too, where Nest's built-in clients listen.
   */
  globalChannels?: string[];
}

export interface ResolvedClusterOptions {
  /** `host:port` of each seed. */
  nodes: string[];
  redisOptions: RedisOptions;
  natMap: ClusterOptions['natMap'];
  slotsRefreshInterval: number;
  slotsRefreshTimeout: number;
  /** Whether a channel is one of `globalChannels` (by name or glob). */
  isGlobal(channel: string): boolean;
}

/** ioredis' own default period of slot map refreshes, on by default here. */
export const DEFAULT_SLOTS_REFRESH_INTERVAL_MS = 5_000;

function invalid(field: string, expected: string): TypeError {
  return new TypeError(`nestjs-redis-pubsub: option "cluster.${field}" must be ${expected}`);
}

function seedAddress(node: ClusterNode, index: number): string {
  if (typeof node === 'number' && Number.isInteger(node) && node > 0 && node < 65_536) return `127.0.0.1:${node}`;
  if (typeof node === 'string' && /^[^\s/@]+:\d{1,5}$/.test(node)) return node;
  if (typeof node === 'object' && node !== null && !Array.isArray(node)) {
    const host = node.host ?? '127.0.0.1';
    const port = node.port ?? 6379;
    if (typeof host === 'string' && host !== '' && Number.isInteger(port)) return `${host}:${port}`;
  }
  // A string is never echoed: it could carry a password.
  throw invalid(`nodes[${index}]`, 'a port, a "host:port" string or a { host, port } object');
}

export function resolveClusterOptions(
  cluster: RedisPubSubClusterOptions,
  checkTimer: (value: unknown, fallback: number, field: string) => number,
  fallbackTimeoutMs: number,
): ResolvedClusterOptions {
  if (typeof cluster !== 'object' || cluster === null || Array.isArray(cluster)) throw invalid('', 'an object');
  if (!Array.isArray(cluster.nodes) || cluster.nodes.length === 0) throw invalid('nodes', 'a non-empty array of seed nodes');
  const global = cluster.globalChannels ?? [];
  if (!Array.isArray(global) || global.some((channel) => typeof channel !== 'string' || channel === '')) {
    throw invalid('globalChannels', 'an array of channel names');
  }
  return {
    nodes: cluster.nodes.map(seedAddress),
    redisOptions: { ...(cluster.redisOptions ?? {}) },
    natMap: cluster.natMap,
    slotsRefreshInterval: checkTimer(cluster.slotsRefreshInterval, DEFAULT_SLOTS_REFRESH_INTERVAL_MS, 'cluster.slotsRefreshInterval'),
    slotsRefreshTimeout: checkTimer(cluster.slotsRefreshTimeout, fallbackTimeoutMs, 'cluster.slotsRefreshTimeout'),
    isGlobal: globalMatcher(global),
  };
}

function globalMatcher(globals: string[]): (channel: string) => boolean {
  if (globals.length === 0) return () => false;
  const names = new Set(globals);
  const globs = globals.filter((glob) => /[*?[\\]/.test(glob)).map(globToRegExp);
  const matches = (channel: string) => names.has(channel) || globs.some((glob) => glob.test(channel));
  // Nest's built-in clients listen for replies on "<channel>.reply" with a classic SUBSCRIBE.
  return (channel) => matches(channel) || (channel.endsWith('.reply') && matches(channel.slice(0, -'.reply'.length)));
}
