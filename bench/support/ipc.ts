/**
 * Child side of the parent <-> worker protocol: the parent sends `{ kind: 'req', id, cmd, args }`,
 * the worker answers `{ kind: 'res', id, result | error }`; workers push `{ kind: 'evt', type, data }`.
 * A worker exits as soon as its parent goes away (IPC disconnect), so nothing outlives the bench.
 */
export type Handlers = Record<string, (args: any) => unknown>;

export function serve(handlers: Handlers): void {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: any) => {
    if (message?.kind !== 'req') return;
    const handler = handlers[message.cmd];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command "${message.cmd}"`);
        return handler(message.args);
      })
      .then(
        (result) => process.send?.({ kind: 'res', id: message.id, result }),
        (error: unknown) =>
          process.send?.({ kind: 'res', id: message.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
      );
  });
}

export function emitToParent(type: string, data?: unknown): void {
  process.send?.({ kind: 'evt', type, data });
}

/** Monotonic, system-wide on Linux (CLOCK_MONOTONIC), so comparable across processes of one machine. */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

export function config<T>(): T {
  const raw = process.argv[2];
  if (!raw) throw new Error('worker: missing JSON config argument');
  return JSON.parse(raw) as T;
}
