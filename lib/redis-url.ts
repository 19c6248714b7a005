import { Redis, type RedisOptions } from 'ioredis';
import { errorText } from './error-text.js';
import { redact } from './redact.js';

/**
 * An ioredis instance for `url`. ioredis lets its first argument win: explicit options, then what
 * the URL says. A URL ioredis cannot parse becomes a TypeError that shows neither the URL nor its
 * parts: ioredis' own error carries the whole input, password included (Node's `ERR_INVALID_URL`
 * has it in `input`), and a log or a crash report would print it.
 */
export function redisWithUrl(options: RedisOptions, url: string): Redis {
  try {
    return Reflect.construct(Redis, [options, url]) as Redis;
  } catch (error) {
    const userinfo = url.includes('@') ? url.slice(0, url.lastIndexOf('@')) : undefined;
    const reason = redact(errorText(error), [url, userinfo]);
    throw new TypeError(`nestjs-redis-pubsub: option "url" is not a valid Redis URL (redis://[[user]:password@]host[:port][/db], or rediss:// for TLS): ${reason}`);
  }
}
