import type { RedisPubSubStats } from './pubsub-link.js';

/** What health checks read from a running server or client. */
export interface MonitoredTransport {
  readonly name: string;
  getStats(): RedisPubSubStats;
}

/**
 * Every server and client registers itself here while it runs, so health checks
 * find them without glue code, however they were created (createMicroservice,
 * connectMicroservice, ClientsModule). Instances leave on close().
 */
class TransportRegistry {
  private readonly live = new Set<MonitoredTransport>();

  add(transport: MonitoredTransport): void {
    this.live.add(transport);
  }

  delete(transport: MonitoredTransport): void {
    this.live.delete(transport);
  }

  list(): MonitoredTransport[] {
    return [...this.live];
  }
}

export const transportRegistry = new TransportRegistry();
