import type { RedisPubSubServer } from '../../lib/index.js';
import type { RedisServerHandle } from '../harness/redis.js';

/** `server.listen()` without Nest, as a promise. */
export const listen = (server: RedisPubSubServer): Promise<void> =>
  new Promise<void>((resolve, reject) => server.listen((err?: unknown) => (err ? reject(err) : resolve())));

/** Names (CLIENT SETNAME) of the connections Redis currently has, starting with `prefix`, sorted. */
export async function connectionNames(redis: RedisServerHandle, prefix: string): Promise<string[]> {
  const list = (await redis.command('CLIENT', 'LIST')) as string;
  return list
    .split('\n')
    .map((line) => /name=(\S*)/.exec(line)?.[1] ?? '')
    .filter((name) => name.startsWith(prefix))
    .sort();
}
