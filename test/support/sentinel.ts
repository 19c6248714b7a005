import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeClient, connectClient } from '../harness/clients.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';

export interface SentinelHandle {
  readonly port: number;
  readonly masterName: string;
  /** The address Sentinel currently reports for the master. */
  masterAddress(): Promise<{ host: string; port: number }>;
  stop(): Promise<void>;
}

/** One redis-sentinel (quorum 1, fast failover) watching `master`, on a free loopback port in a temp dir. */
export async function startSentinel(master: { host: string; port: number }, masterName = 'mymaster'): Promise<SentinelHandle> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-'));
  const config = join(dir, 'sentinel.conf');
  writeFileSync(
    config,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `logfile ${join(dir, 'sentinel.log')}`,
      `sentinel monitor ${masterName} ${master.host} ${master.port} 1`,
      `sentinel down-after-milliseconds ${masterName} 500`,
      `sentinel failover-timeout ${masterName} 3000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('redis-sentinel', [config], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const url = `redis://127.0.0.1:${port}`;

  const masterAddress = async () => {
    const client = await connectClient(url);
    try {
      const [host, p] = (await client.call('SENTINEL', 'get-master-addr-by-name', masterName)) as [string, string];
      return { host, port: Number(p) };
    } finally {
      await closeClient(client);
    }
  };
  await waitFor(() => masterAddress(), { message: `redis-sentinel on ${port} answering`, timeoutMs: 10_000 });

  return {
    port,
    masterName,
    masterAddress,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      process.off('exit', kill);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
