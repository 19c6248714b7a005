/**
 * The package as a user installs it: `npm pack` (which builds dist/ through `prepare`), the tarball
 * unpacked into the node_modules of a project configured like `nest new`'s (test/fixtures/nest-new-app:
 * ESM, nodenext, strict), then:
 * - the tarball holds what the package needs, and every source map points at a shipped file;
 * - the main entry loads without @nestjs/terminus (an optional peer) installed;
 * - every ```ts block of README.md compiles there with tsc, unchanged;
 * - the README's quick start (main.ts, app.module.ts, orders.controller.ts, orders.service.ts), as tsc
 *   emitted it, runs against a real redis-server and answers a request.
 *
 * README convention: each ```ts block becomes one file of the project's src/. A block whose first line
 * is a comment naming a file (`// app.module.ts`) is written under that name, so other blocks can import
 * it (`import { AppModule } from './app.module.js'`); any other block gets a name of its own and must be
 * complete by itself (its own imports and declarations). Names must be unique. tsc errors are reported
 * as README.md:<line>.
 *
 * The other packages come from this repository's node_modules (symlinked), so no network is needed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient } from '../lib/index.js';
import { startRedis } from './harness/redis.js';
import { waitFor } from './harness/wait.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** What a user's project has installed next to the package (peers and what the README imports). */
const INSTALLED = ['@nestjs/common', '@nestjs/core', '@nestjs/microservices', '@nestjs/platform-express', '@nestjs/config', 'ioredis', 'rxjs', 'reflect-metadata', '@types/node'];

interface ReadmeBlock {
  /** 1-based README line of the block's first code line. */
  line: number;
  file: string;
  code: string;
}

function readmeTsBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split('\n');
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```ts') continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end].trim() !== '```') end++;
    const code = lines.slice(start, end).join('\n') + '\n';
    const named = /^\/\/\s*([\w.-]+\.ts)\b/.exec(lines[start] ?? '');
    blocks.push({ line: start + 1, file: named ? named[1] : `readme-line-${start + 1}.ts`, code });
    i = end;
  }
  return blocks;
}

function run(command: string, args: string[], cwd: string): { status: number | null; output: string } {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

function link(project: string, name: string): void {
  const target = join(project, 'node_modules', name);
  mkdirSync(dirname(target), { recursive: true });
  symlinkSync(join(root, 'node_modules', name), target, 'dir');
}

describe('the packed package in a project configured like `nest new` (strict)', () => {
  let work: string;
  let project: string;
  let files: string[];

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'nestjs-redis-pubsub-package-'));
    const pack = run('npm', ['pack', '--json', '--pack-destination', work], root);
    if (pack.status !== 0) throw new Error(`npm pack failed:\n${pack.output}`);
    const [tarball] = readdirSync(work).filter((name) => name.endsWith('.tgz'));
    project = join(work, 'app');
    cpSync(join(root, 'test', 'fixtures', 'nest-new-app'), project, { recursive: true });
    const installed = join(project, 'node_modules', 'nestjs-redis-pubsub');
    mkdirSync(installed, { recursive: true });
    const untar = run('tar', ['-xzf', join(work, tarball), '-C', installed, '--strip-components=1'], work);
    if (untar.status !== 0) throw new Error(`tar failed:\n${untar.output}`);
    for (const name of INSTALLED) link(project, name);
    files = listFiles(installed).map((file) => relative(installed, file));
  }, 180_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships the built entries, their types, LICENSE, and the sources every source map points to', () => {
    for (const file of ['LICENSE', 'README.md', 'package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/health/index.js', 'dist/lib/health/index.d.ts']) {
      expect(files).toContain(file);
    }
    expect(files.filter((file) => file.includes('spec') || file.startsWith('test/') || file.startsWith('sample/'))).toEqual([]);
    const installed = join(project, 'node_modules', 'nestjs-redis-pubsub');
    const maps = files.filter((file) => file.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(10);
    const missing = maps.flatMap((map) => {
      const { sources } = JSON.parse(readFileSync(join(installed, map), 'utf8')) as { sources: string[] };
      return sources.map((source) => join(dirname(map), source)).filter((source) => !existsSync(join(installed, source)));
    });
    expect(missing).toEqual([]);
  });

  it('loads the main entry without @nestjs/terminus installed; ./health names the missing peer', () => {
    expect(existsSync(join(project, 'node_modules', '@nestjs', 'terminus'))).toBe(false);
    // @opentelemetry/api, an optional peer too, is not installed either.
    expect(existsSync(join(project, 'node_modules', '@opentelemetry', 'api'))).toBe(false);
    const script = `
      const main = await import('nestjs-redis-pubsub');
      const health = await import('nestjs-redis-pubsub/health').then(() => 'loaded', (error) => error.message);
      const { createRequire } = await import('node:module');
      const pkg = createRequire(import.meta.url)('nestjs-redis-pubsub/package.json');
      console.log(JSON.stringify({ exports: Object.keys(main).sort(), health, version: pkg.version }));`;
    const result = run(process.execPath, ['--input-type=module', '-e', script], project);
    expect(result.status).toBe(0);
    const loaded = JSON.parse(result.output.split('\n').pop() ?? '') as { exports: string[]; health: string; version: string };
    expect(loaded.exports).toEqual(expect.arrayContaining(['RedisPubSubClient', 'RedisPubSubContext', 'RedisPubSubServer', 'REDIS_PUBSUB_TRANSPORT']));
    expect(loaded.health).toMatch(/Cannot find package '@nestjs\/terminus'/);
    expect(loaded.version).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  });

  it('compiles every ```ts block of the README with tsc, unchanged', () => {
    link(project, '@nestjs/terminus');
    // The OpenTelemetry set-up example.
    for (const name of ['api', 'context-async-hooks', 'core', 'exporter-prometheus', 'sdk-metrics', 'sdk-trace-base']) link(project, `@opentelemetry/${name}`);
    const blocks = readmeTsBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
    expect(blocks.length).toBeGreaterThan(3);
    const names = blocks.map((block) => block.file);
    expect(names.filter((name, i) => names.indexOf(name) !== i)).toEqual([]);
    mkdirSync(join(project, 'src'));
    for (const block of blocks) writeFileSync(join(project, 'src', block.file), block.code);
    const tsc = run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--pretty', 'false'], project);
    // src/<file>(line,col): error ... -> README.md:<line>:col: error ...
    const errors = tsc.output.replace(/^src\/([\w.-]+)\((\d+),(\d+)\)/gm, (whole, file: string, line: string, col: string) => {
      const block = blocks.find((b) => b.file === file);
      return block ? `README.md:${block.line + Number(line) - 1}:${col} (${file})` : whole;
    });
    expect(errors).toBe('');
    expect(tsc.status).toBe(0);
  });

  it("runs the README's quick start as emitted (REDIS_URL through ConfigService): a request is answered", async () => {
    const main = join(project, 'dist', 'src', 'main.js');
    expect(existsSync(main)).toBe(true); // emitted by the compile test above
    const redis = await startRedis();
    const app = spawn(process.execPath, [main], { cwd: project, env: { ...process.env, NODE_OPTIONS: '', REDIS_URL: redis.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    app.stdout.on('data', (chunk: Buffer) => (output += chunk));
    app.stderr.on('data', (chunk: Buffer) => (output += chunk));
    const exited = new Promise<void>((resolve) => app.once('exit', () => resolve()));
    const client = new RedisPubSubClient({ url: redis.url, name: 'readme-check' });
    try {
      // Until the app has subscribed, a request fails at once ("no subscriber"): retry until answered.
      const sum = await waitFor(() => (app.exitCode === null ? firstValueFrom(client.send<number>('math.sum', [1, 2, 3])) : Promise.reject(new Error(`app exited:\n${output}`))), {
        timeoutMs: 30_000,
        intervalMs: 100,
        message: 'README quick start answering math.sum',
      });
      expect(sum).toBe(6);
      expect(output).not.toMatch(/ERROR/);
    } finally {
      await client.close();
      app.kill('SIGTERM');
      await exited;
      await redis.stop();
    }
  });
});

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listFiles(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}
