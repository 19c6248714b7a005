import { waitFor } from './harness/wait.js';
import { startFaultRig, waitForResubscribed, type FaultRig } from './support/fault-rig.js';

/** `connection lost (<reason>)` names the cause of this loss, never an error left over from an earlier one. */
describe('the logged reason of a lost connection', () => {
  let rig: FaultRig | undefined;

  afterEach(async () => {
    await rig?.close();
  });

  it('a CLIENT KILL after an earlier reset is logged as a close by the peer, not as the old reset', async () => {
    rig = await startFaultRig({ name: 'loss-reason' });
    const lostLines = () => rig!.app.logger.lines.filter((l) => l.message.startsWith('subscriber connection lost')).map((l) => l.message);
    rig.proxy.reset();
    await waitForResubscribed(rig);
    await waitFor(() => lostLines().length === 1, { message: 'first loss logged' });
    expect(lostLines()[0]).toMatch(/ECONNRESET/);
    expect(rig.app.server.getStats().connections.subscriber.lastError).toMatch(/ECONNRESET/);

    await rig.redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitFor(() => lostLines().length === 2, { message: 'second loss logged' });
    expect(lostLines()[1]).toBe('subscriber connection lost (connection closed by the peer): reconnecting');
  });
});
