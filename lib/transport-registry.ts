import type { RedisPubSubStats } from './pubsub-link.js';

/** What health checks read from a running server or client. */
export interface MonitoredTransport {
  readonly name: string;
  getStats(): RedisPubSubStats;
}

/** Closed instances remembered to report them `down` (bounded, oldest forgotten first). */
const MAX_CLOSED = 256;

/**
 * Every server and client registers itself here while it runs, so health checks
 * find them without glue code, however they were created (createMicroservice,
 * connectMicroservice, ClientsModule). On close() an instance moves to the closed
 * list, so a check still reports it (`down`) even when none ran before the close,
 * until a new instance of the same name and kind replaces it.
 */
class TransportRegistry {
  private readonly live = new Set<MonitoredTransport>();
  /** Closed instances and their identity, oldest first. */
  private readonly closedOnes = new Map<MonitoredTransport, string>();

  add(transport: MonitoredTransport): void {
    this.closedOnes.delete(transport);
    this.live.add(transport);
    const id = identity(transport);
    for (const [old, oldId] of this.closedOnes) if (oldId === id) this.closedOnes.delete(old);
  }

  /** The instance was closed: it stops running but is remembered, unless a running one of the same identity replaces it. */
  markClosed(transport: MonitoredTransport): void {
    if (!this.live.delete(transport)) return;
    const id = identity(transport);
    for (const other of this.live) if (identity(other) === id) return;
    this.closedOnes.set(transport, id);
    for (const old of this.closedOnes.keys()) {
      if (this.closedOnes.size <= MAX_CLOSED) break;
      this.closedOnes.delete(old);
    }
  }

  /** Forgets the instance entirely (running or closed). */
  delete(transport: MonitoredTransport): void {
    this.live.delete(transport);
    this.closedOnes.delete(transport);
  }

  /** Running instances. */
  list(): MonitoredTransport[] {
    return [...this.live];
  }

  /** Closed instances not replaced by a running one of the same name and kind, oldest first. */
  closed(): MonitoredTransport[] {
    return [...this.closedOnes.keys()];
  }
}

/** "server:orders": two instances with the same identity are the same service from the outside. */
function identity(transport: MonitoredTransport): string {
  let kind = '?';
  try {
    kind = transport.getStats().kind;
  } catch {
    // A transport whose stats cannot be read is still tracked, under an unknown kind.
  }
  return `${kind}:${transport.name}`;
}

export const transportRegistry = new TransportRegistry();
