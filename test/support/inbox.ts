import { waitFor } from '../harness/wait.js';

export interface Received {
  handler: string;
  data: unknown;
  channel: string;
  pattern: string | undefined;
  metadata: Record<string, unknown> | undefined;
}

/** What the test app's handlers received, with a way to wait for it. */
export class Inbox {
  readonly items: Received[] = [];

  push(item: Received): void {
    this.items.push(item);
  }

  of(handler: string): Received[] {
    return this.items.filter((item) => item.handler === handler);
  }

  async waitFor(predicate: (items: Received[]) => boolean, message = 'inbox condition not met', timeoutMs = 10_000): Promise<void> {
    await waitFor(() => predicate(this.items), { timeoutMs, message: `${message}; inbox: ${JSON.stringify(this.items).slice(0, 500)}` });
  }
}
