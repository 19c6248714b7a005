/** Client option `requireReceiver`: emit() fails when Redis delivered the event to nobody, after retrying. */
export interface RequireReceiverOptions {
  /** Publishes again this many times while Redis counts no receiver. Default 3. */
  retries?: number;
  /** Pause before each retry. Default 200 ms. */
  retryDelayMs?: number;
}

export const DEFAULT_REQUIRE_RECEIVER = { retries: 3, retryDelayMs: 200 } as const;

/**
 * Runs `publish` until Redis reports at least one receiver, at most `1 + retries` times. Each retry
 * publishes the same stamped event again, so a subscriber never handles it twice: a receiver
 * count of 0 means nobody got the previous attempt, and durable copies are dropped by position.
 */
export async function publishConfirmed(publish: () => Promise<number>, confirm: Required<RequireReceiverOptions> | false, describe: () => string): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const receivers = await publish();
    if (receivers > 0 || confirm === false) return receivers;
    if (attempt > confirm.retries) throw new Error(`${describe()} reached no subscriber: Redis counted 0 receivers in ${attempt} attempt(s)`);
    await new Promise((resolve) => setTimeout(resolve, confirm.retryDelayMs));
  }
}
