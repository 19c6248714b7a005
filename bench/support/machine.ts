import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { createRequire } from 'node:module';

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  node: string;
  redis: string;
  ioredis: string;
  nestMicroservices: string;
  nestCore: string;
  loadAvgAtStart: number[];
}

function pkgVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url);
    const path = require.resolve(`${name}/package.json`);
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
  } catch {
    // Packages with "exports" that hide package.json: read it from node_modules directly.
    try {
      return (JSON.parse(readFileSync(`node_modules/${name}/package.json`, 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  }
}

export async function machineInfo(redisVersion: string): Promise<MachineInfo> {
  const { loadavg } = await import('node:os');
  let redisBinary = '';
  try {
    redisBinary = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    /* reported through redisVersion */
  }
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model?.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${process.platform} ${release()} ${process.arch}`,
    node: process.version,
    redis: redisVersion + (redisBinary.includes('malloc=') ? ` (${/malloc=\S+/.exec(redisBinary)?.[0]})` : ''),
    ioredis: pkgVersion('ioredis'),
    nestMicroservices: pkgVersion('@nestjs/microservices'),
    nestCore: pkgVersion('@nestjs/core'),
    loadAvgAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
