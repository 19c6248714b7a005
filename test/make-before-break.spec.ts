import { assessTransport, DEFAULT_HEALTH_THRESHOLDS } from '../lib/health/index.js';
import { delay, waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT, startFaultRig, type FaultRig } from './support/fault-rig.js';
import { SteadyStream, tally } from './support/steady-stream.js';

/**
 * A connection that falls silent is suspected, not killed: a stalled Redis or a partition that heals
 * still delivers what it holds. Each test runs sequence-numbered events at a steady rate through the
 * fault and counts what the handlers received: nothing lost, nothing twice.
 */
const FAULT_MS = 5 * FAST_HEARTBEAT.timeoutMs;

function handledSeqs(rig: FaultRig): number[] {
  return rig.app.inbox.of('inbound').map((item) => (item.data as { seq: number }).seq);
}

/**
 * Lets the stream run on past the fault (`faultSeq`: the last sequence sent before it), stops it and waits
 * until every event Redis executed was handled; then nothing may be lost or doubled.
 */
async function expectNothingLostOrDoubled(rig: FaultRig, stream: SteadyStream, faultSeq: number): Promise<void> {
  await waitFor(() => [...stream.published].some((seq) => seq > faultSeq + 20), { message: 'events published after the fault' });
  await stream.stop();
  await waitFor(() => tally(handledSeqs(rig), stream.published).lost.length === 0, {
    timeoutMs: 20_000,
    message: `every published event handled (lost: ${JSON.stringify(tally(handledSeqs(rig), stream.published).lost.slice(0, 50))}); events: ${rig.events.join(', ')}`,
  });
  // Anything a draining socket still had to deliver has arrived once the drain ended.
  await waitFor(() => rig.app.server.getStats().handover?.draining === 0, { timeoutMs: 40_000, message: 'old socket drained' });
  const result = tally(handledSeqs(rig), stream.published);
  expect(result.lost).toEqual([]);
  expect(result.duplicates).toEqual([]);
}

async function startRig(name: string): Promise<{ rig: FaultRig; stream: SteadyStream }> {
  const rig = await startFaultRig({ name }, { redisConfig: { 'enable-debug-command': 'yes' } });
  const stream = await SteadyStream.start(rig.redis.url);
  await waitFor(() => handledSeqs(rig).length >= 10, { message: 'steady events flowing before the fault' });
  return { rig, stream };
}

describe('make before break: transient faults lose nothing and double nothing', () => {
  let rig: FaultRig | undefined;
  let stream: SteadyStream | undefined;

  afterEach(async () => {
    await stream?.stop();
    await rig?.redis.kill('SIGCONT');
    await rig?.close();
    rig = undefined;
    stream = undefined;
  });

  it('Redis paused with SIGSTOP for 5x timeoutMs: suspected and kept, then everything held is delivered', async () => {
    ({ rig, stream } = await startRig('mbb-sigstop'));
    const faultSeq = stream.last;
    await rig.redis.kill('SIGSTOP');
    await waitFor(() => rig!.events.includes('suspect:subscriber'), { message: 'subscriber suspected' });
    const health = rig.app.server.getStats();
    expect(health.state).toBe('reconnecting');
    expect(health.connections.subscriber.state).toBe('suspect');
    expect(health.handover?.suspect).toMatchObject({ connection: 'subscriber', reason: expect.stringMatching(/heartbeat timeout/) });
    expect(assessTransport(health, 'health', DEFAULT_HEALTH_THRESHOLDS, Date.now())).toMatchObject({
      status: 'degraded',
      reasons: expect.arrayContaining([expect.stringMatching(/^subscriber connection suspect for \d+ ms \(heartbeat timeout/)]),
    });
    await delay(FAULT_MS);
    await rig.redis.kill('SIGCONT');
    await waitFor(() => rig!.app.server.getStats().state === 'connected', { message: 'connected again' });
    await expectNothingLostOrDoubled(rig, stream, faultSeq);
    expect(rig.events).toContain('resumed:subscriber');
  });

  it('DEBUG SLEEP longer than timeoutMs: nothing lost, nothing twice', async () => {
    ({ rig, stream } = await startRig('mbb-debug-sleep'));
    const faultSeq = stream.last;
    await rig.redis.command('DEBUG', 'SLEEP', String(FAULT_MS / 1000));
    await waitFor(() => rig!.app.server.getStats().state === 'connected', { message: 'connected again' });
    await expectNothingLostOrDoubled(rig, stream, faultSeq);
    expect(rig.events).toContain('suspect:subscriber');
  });

  it('CLIENT PAUSE longer than timeoutMs: nothing lost, nothing twice', async () => {
    ({ rig, stream } = await startRig('mbb-client-pause'));
    const faultSeq = stream.last;
    await rig.redis.command('CLIENT', 'PAUSE', String(FAULT_MS), 'ALL');
    await waitFor(() => rig!.events.includes('suspect:subscriber'), { message: 'subscriber suspected' });
    await waitFor(() => rig!.app.server.getStats().state === 'connected', { timeoutMs: 15_000, message: 'connected again' });
    await expectNothingLostOrDoubled(rig, stream, faultSeq);
  });

  it.each([2, 5])(
    'a partition of the subscriber socket that heals after %ix timeoutMs: cut over to a replacement, then the old socket is spliced in',
    async (factor) => {
      ({ rig, stream } = await startRig(`mbb-partition-${factor}x`));
      const faultSeq = stream.last;
      const partition = rig.proxy.partition({ match: `mbb-partition-${factor}x:sub` });
      const faultAt = Date.now();
      // The replacement is subscribed beside the silent socket and takes over...
      await waitFor(() => rig!.events.includes('cut-over:subscriber'), { message: 'cut over to the replacement' });
      await delay(Math.max(0, faultAt + factor * FAST_HEARTBEAT.timeoutMs - Date.now()));
      // ...and what Redis held for the old socket arrives when the partition heals.
      partition.heal();
      await expectNothingLostOrDoubled(rig, stream, faultSeq);
      const { handover, connections } = rig.app.server.getStats();
      expect(handover).toMatchObject({ cutOvers: 1, suspect: null, draining: 0 });
      expect(handover!.spliced).toBeGreaterThan(0);
      expect(connections.subscriber.reconnects).toBe(1);
      expect(rig.app.logger.lines.map((l) => l.message)).toContainEqual(expect.stringMatching(/old subscriber connection closed \(caught up\): \d+ late event/));
    },
  );

  it('a partition of every connection (new ones too) that heals after 5x timeoutMs: the old sockets are kept', async () => {
    ({ rig, stream } = await startRig('mbb-full-partition'));
    const faultSeq = stream.last;
    const partition = rig.proxy.partition({ newConnections: true });
    await waitFor(() => rig!.events.includes('suspect:subscriber'), { message: 'subscriber suspected' });
    await delay(FAULT_MS);
    partition.heal();
    await waitFor(() => rig!.app.server.getStats().state === 'connected', { message: 'connected again' });
    await expectNothingLostOrDoubled(rig, stream, faultSeq);
    expect(rig.events).toContain('resumed:subscriber');
    expect(rig.events).not.toContain('cut-over:subscriber');
  });
});

describe('make before break: permanent faults recover through the replacement', () => {
  let rig: FaultRig | undefined;
  let stream: SteadyStream | undefined;

  afterEach(async () => {
    await stream?.stop();
    await rig?.close();
    rig = undefined;
    stream = undefined;
  });

  it.each([
    ['a permanent blackhole', false],
    ['a half-open death (Redis dropped the client, new connections work)', true],
  ])('%s: cut over, and every event published after the cut-over is handled once', async (_label, halfOpen) => {
    ({ rig, stream } = await startRig(`mbb-dead-${halfOpen ? 'half-open' : 'blackhole'}`));
    rig.proxy.blackhole({ halfOpen });
    await waitFor(() => rig!.events.includes('cut-over:subscriber'), { message: 'cut over to the replacement' });
    const after = stream.last;
    await waitFor(() => handledSeqs(rig!).some((seq) => seq > after + 20), { message: 'events handled after the cut-over' });
    await stream.stop();
    const later = [...stream.published].filter((seq) => seq > after);
    await waitFor(() => tally(handledSeqs(rig!), later).lost.length === 0, { message: 'every event after the cut-over handled' });
    expect(tally(handledSeqs(rig), stream.published).duplicates).toEqual([]);
    expect(rig.app.server.getStats().state).toBe('connected');
  });
});
