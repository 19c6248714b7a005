import { RetryLog } from '../lib/retry-log.js';

/** A RetryLog on a clock the test moves. */
function clocked(): { log: RetryLog; advance(ms: number): void } {
  let now = 1_000_000;
  return { log: new RetryLog(10_000, 1_000, () => now), advance: (ms) => (now += ms) };
}

describe('RetryLog (unit): which failed connection attempts are logged', () => {
  it('logs the first failure at once, then the same failure at most once per 10 s, counting the ones in between', () => {
    const { log, advance } = clocked();
    const logged: Array<[number, number]> = [];
    // 100 attempts 250 ms apart (25 s): a dead Redis with the default backoff.
    for (let attempt = 1; attempt <= 100; attempt++) {
      const unlogged = log.admit(attempt, 'connect ECONNREFUSED 127.0.0.1:6379');
      if (unlogged !== null) logged.push([attempt, unlogged]);
      advance(250);
    }
    expect(logged).toEqual([
      [1, 0],
      [41, 39],
      [81, 39],
    ]);
  });

  it('news (a new outage, or another cause) is logged sooner, but at most once per second', () => {
    const { log, advance } = clocked();
    expect(log.admit(1, 'connect ECONNREFUSED')).toBe(0);
    advance(100);
    expect(log.admit(2, 'WRONGPASS invalid username-password pair')).toBeNull(); // news, but within 1 s
    advance(900);
    expect(log.admit(3, 'WRONGPASS invalid username-password pair')).toBe(1);
    advance(1_000);
    expect(log.admit(4, 'WRONGPASS invalid username-password pair')).toBeNull(); // the same again: 10 s
    expect(log.admit(1, 'connection closed')).toBe(1); // a new outage
  });

  it('causes that keep alternating still log at most once per second', () => {
    const { log, advance } = clocked();
    let lines = 0;
    for (let attempt = 1; attempt <= 1_000; attempt++) {
      if (log.admit(attempt, attempt % 2 ? 'ECONNREFUSED' : 'ETIMEDOUT') !== null) lines++;
      advance(10);
    }
    expect(lines).toBe(10); // 10 s of attempts
  });
});
