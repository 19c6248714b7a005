import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';

/**
 * A tiny `sh` watchdog per redis-server handle that kills the server and removes its temp dir if
 * this process dies without calling stop() — including when it is SIGKILLed or crashes, and
 * inside Jest, where `process.on('exit')` registers on Jest's sandbox copy of `process` and is
 * never called.
 *
 * It reads commands on its stdin, a pipe whose only write end is held by this process (Node
 * opens it close-on-exec, so redis-server does not inherit it). EOF means "the owner is gone":
 * it SIGKILLs the current pid (if any), waits for it to disappear and removes the dir.
 *   `pid N`  a new redis-server process was spawned
 *   `exited` that process has exited (nothing to kill; avoids killing a recycled pid)
 *   `stop`   the owner cleaned up itself: exit without doing anything
 * It ignores INT/TERM/HUP so that a Ctrl-C of the test run does not kill it before it acts.
 * Both the process and the pipe are unref'd: they never keep the event loop alive.
 */
const SCRIPT = `
trap '' INT TERM HUP
dir=$1
pid=
while IFS= read -r cmd; do
  case "$cmd" in
    "pid "*) pid=\${cmd#pid } ;;
    exited) pid= ;;
    stop) exit 0 ;;
  esac
done
if [ -n "$pid" ]; then
  kill -9 "$pid" 2>/dev/null
  n=0
  while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
fi
rm -rf -- "$dir"
`;

export class Reaper {
  private readonly child: ChildProcess | undefined;
  private readonly stdin: Writable | undefined;
  private done = false;

  constructor(dir: string) {
    let child: ChildProcess | undefined;
    try {
      child = spawn('sh', ['-c', SCRIPT, 'redis-harness-reaper', dir], { stdio: ['pipe', 'ignore', 'ignore'] });
    } catch {
      child = undefined; // best effort: the exit hook still covers plain Node processes
    }
    this.child = child;
    this.stdin = child?.stdin ?? undefined;
    child?.on('error', () => {
      this.done = true;
    });
    this.stdin?.on('error', () => {
      this.done = true;
    });
    child?.unref();
    unrefStream(this.stdin);
  }

  spawned(pid: number): void {
    this.send(`pid ${pid}`);
  }

  exited(): void {
    this.send('exited');
  }

  /** The owner cleaned up: let the watchdog exit quietly. */
  dismiss(): void {
    if (this.done) return;
    this.send('stop');
    this.done = true;
    this.stdin?.end();
  }

  private send(line: string): void {
    if (this.done || this.stdin === undefined || this.stdin.destroyed) return;
    this.stdin.write(`${line}\n`);
  }
}

function unrefStream(stream: Writable | undefined): void {
  const maybe = stream as (Writable & { unref?: () => void }) | undefined;
  maybe?.unref?.();
}
