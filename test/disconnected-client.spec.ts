import { Logger } from '@nestjs/common';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../lib/index.js';
import { freePort } from './harness/ports.js';
import { CaptureLogger } from './support/capture-logger.js';

/**
 * Nest's `disconnected-client` e2e spec, against this client: a request to a Redis that cannot be
 * reached fails at the first connection error, with the error's code, as ClientRedis' does (Nest's
 * controller maps `code === 'ECONNREFUSED'` to 408), instead of waiting for the request timeout.
 */
describe('a client that never reached Redis', () => {
  let client: RedisPubSubClient | undefined;
  const logger = new CaptureLogger();

  beforeAll(() => Logger.overrideLogger(logger));
  afterAll(() => Logger.overrideLogger(new Logger()));
  afterEach(async () => {
    await client?.close();
    client = undefined;
  });

  it('fails send() at the first connection error, with code ECONNREFUSED, well before requestTimeoutMs', async () => {
    const port = await freePort();
    client = new RedisPubSubClient({ url: `redis://:s3cret-pw@127.0.0.1:${port}`, requestTimeoutMs: 60_000 });
    const error = (await firstValueFrom(client.send({ cmd: 'none' }, [1, 2, 3])).catch((err: unknown) => err)) as Error & { code?: string };
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('ECONNREFUSED');
    expect(error.message).toMatch(/Redis could not be reached/);
    expect(error.message).not.toContain('s3cret-pw');
    expect(client.getStats().pending?.requests).toBe(0);
  });
});
