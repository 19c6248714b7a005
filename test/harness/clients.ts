import { Redis, type RedisOptions } from 'ioredis';

/**
 * Options for a test client that never reconnects on its own and fails commands instead of
 * queueing them across a reconnect: what fault-injection tests want, because every reconnect
 * must be something the test caused and can see.
 */
export const NO_RETRY_OPTIONS = {
  lazyConnect: true,
  retryStrategy: () => null,
  maxRetriesPerRequest: 0,
  disableClientInfo: true,
} as const satisfies RedisOptions;

/**
 * Creates an ioredis client for `url` (with NO_RETRY_OPTIONS unless overridden) and connects it.
 * An 'error' listener is attached so socket errors never become unhandled 'error' events;
 * they still reject the commands concerned.
 */
export async function connectClient(url: string, options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis(url, { ...NO_RETRY_OPTIONS, ...options });
  client.on('error', () => {
    /* surfaced through rejected commands and the 'close'/'end' events */
  });
  try {
    await client.connect();
  } catch (err) {
    await closeClient(client);
    throw err;
  }
  return client;
}

/**
 * Disconnects a client without reconnecting and resolves once ioredis has emitted 'end'
 * (its socket is closed, so nothing keeps Jest's event loop alive). Safe to call twice,
 * and safe on a client that never connected or whose connection was already lost.
 */
export async function closeClient(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  client.disconnect(false);
  await ended;
}
