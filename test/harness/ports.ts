import { createServer } from 'node:net';

/**
 * Asks the kernel for a currently free TCP port on 127.0.0.1 (listen on port 0, read it, close).
 * The port is free when this resolves, but nothing reserves it: a caller that binds it later
 * must be ready to retry (startRedis does).
 */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`freePort: unexpected server address ${String(address)}`));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
