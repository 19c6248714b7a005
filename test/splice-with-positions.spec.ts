import { firstValueFrom } from 'rxjs';
import { RedisPubSubClient, type GapInfo } from '../lib/index.js';
import { delay, waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT, startFaultRig, type FaultRig } from './support/fault-rig.js';
import { tally } from './support/steady-stream.js';

/**
 * Events stamped by our own client carry positions, so the server's gap detection sees them. After a
 * cut-over the replacement delivers newer events first and the old socket's held ones arrive late,
 * behind them: they fill the hole, they are not duplicates, and a hole that is filled is no loss.
 */
describe('a healed partition spliced in, with events stamped by RedisPubSubClient', () => {
  let rig: FaultRig | undefined;
  let client: RedisPubSubClient | undefined;
  let timer: NodeJS.Timeout | undefined;

  afterEach(async () => {
    clearInterval(timer);
    await client?.close();
    await rig?.close();
    rig = client = timer = undefined;
  });

  it('late events from the old socket are handled once, and no gap is reported', async () => {
    rig = await startFaultRig({ name: 'splice-stamped' });
    const gaps: GapInfo[] = [];
    rig.app.server.on('gap', (info) => gaps.push(info));
    client = new RedisPubSubClient({ url: rig.redis.url, name: 'splice-stamped-publisher' });
    await client.connect();

    const published = new Set<number>();
    const inFlight = new Set<Promise<unknown>>();
    let seq = 0;
    timer = setInterval(() => {
      const n = ++seq;
      const sent = firstValueFrom(client!.emit('inbound', { seq: n })).then(() => published.add(n), () => undefined);
      inFlight.add(sent);
      void sent.finally(() => inFlight.delete(sent));
    }, 15);
    const handled = () => rig!.app.inbox.of('inbound').map((item) => (item.data as { seq: number }).seq);
    await waitFor(() => handled().length >= 10, { message: 'steady events flowing before the fault' });

    const partition = rig.proxy.partition({ match: 'splice-stamped:sub' });
    await waitFor(() => rig!.events.includes('cut-over:subscriber'), { message: 'cut over to the replacement' });
    const cutOverSeq = seq;
    await waitFor(() => handled().some((n) => n > cutOverSeq + 10), { message: 'the replacement delivers newer events' });
    await delay(FAST_HEARTBEAT.timeoutMs);
    partition.heal();

    await waitFor(() => rig!.app.server.getStats().handover?.draining === 0, { timeoutMs: 40_000, message: 'old socket drained' });
    clearInterval(timer);
    await Promise.all([...inFlight]);
    await waitFor(() => tally(handled(), published).lost.length === 0, {
      message: `every published event handled (lost: ${JSON.stringify(tally(handled(), published).lost.slice(0, 50))})`,
    });
    const result = tally(handled(), published);
    expect(result.duplicates).toEqual([]);
    // The old socket's events really arrived after newer ones: this is the case under test.
    expect(result.late).toBeGreaterThan(0);
    expect(rig.app.server.getStats().handover!.spliced).toBeGreaterThan(0);
    expect(gaps).toEqual([]);
    expect(rig.app.server.getStats().messages).toMatchObject({ lost: 0, duplicates: 0 });
  });
});
