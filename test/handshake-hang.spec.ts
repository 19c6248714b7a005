import { RedisPubSubServer } from '../lib/index.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { startRedis, type RedisServerHandle } from './harness/redis.js';
import { delay, waitFor } from './harness/wait.js';
import { FAST_HEARTBEAT, expectHandlesNewEvent, startFaultRig, waitForResubscribed, type FaultRig } from './support/fault-rig.js';
import { listen } from './support/transport-utils.js';

/**
 * A peer that accepts TCP but never answers (LB with a dead backend, partition right after the
 * SYN-ACK) leaves ioredis in status "connect" with its handshake (HELLO / CLIENT SETNAME / INFO)
 * pending forever: ioredis' connectTimeout is cleared at the TCP connect, the heartbeat only
 * runs on isReady connections and kill() refuses a connection that is not "connected".
 * Nothing ever tears the socket down, so the transport never tries again.
 */
describe('a handshake that never completes', () => {
  let rig: FaultRig | undefined;
  let redis: RedisServerHandle | undefined;
  let proxy: FaultProxy | undefined;

  afterEach(async () => {
    await rig?.close();
    rig = undefined;
    await proxy?.close();
    proxy = undefined;
    await redis?.stop();
    redis = undefined;
  });

  it('after a heartbeat verdict, a replacement into a silent peer must not stall the transport forever', async () => {
    rig = await startFaultRig({ name: 'handshake-hang' });
    // The silent death, and every new connection is accepted and then silent too.
    rig.proxy.blackholeAll(true);
    await waitFor(() => rig!.events.includes('heartbeat-timeout:subscriber'), { message: 'heartbeat verdict' });
    // Replacements are opened into the black hole (backoff is <= 500 ms) and must be given up, not waited on forever.
    const gaveUp = (role: string) =>
      rig!.app.logger.lines.some((l) => l.message.includes(`${role} connection: replacement attempt`) && l.message.includes('did not answer'));
    await waitFor(() => gaveUp('subscriber') && gaveUp('publisher'), { message: 'replacements into the black hole given up', timeoutMs: 15_000 });
    // The network heals: any new connection would now work.
    rig.proxy.blackholeAll(false);
    await waitForResubscribed(rig, 15_000);
    await expectHandlesNewEvent(rig, 'after-handshake-hang');
  });

  it('a path that dies after the first handshake reply (then silence) must not stall the transport forever', async () => {
    rig = await startFaultRig({ name: 'handshake-partial' });
    const [pub, sub] = rig.app.server.unwrap();
    // Timing hook on the real sockets: the moment the first reply byte of the NEXT handshake reaches
    // the client, the path dies (blackhole: nothing more is forwarded either way, no FIN, no RST).
    for (const redis of [pub, sub]) {
      redis.once('connect', () => redis.stream.once('data', () => rig!.proxy.blackhole()));
    }
    rig.proxy.reset();
    await waitFor(() => sub.status === 'connect' || pub.status === 'connect', { message: 'a handshake in progress' });
    await delay(1_500); // several handshake timeouts (400 ms here)
    // New connections are forwarded normally all along: a retry would succeed at once.
    await waitForResubscribed(rig, 15_000);
    await expectHandlesNewEvent(rig, 'after-partial-handshake');
  });

  it('listen() must not hang forever when the first connection lands on a silent peer', async () => {
    redis = await startRedis();
    proxy = await FaultProxy.start({ host: redis.host, port: redis.port });
    proxy.blackholeAll(true);
    const server = new RedisPubSubServer({ url: proxy.url, heartbeat: FAST_HEARTBEAT, name: 'handshake-hang-listen' });
    server.addHandler('inbound', async () => undefined, true);
    const listening = listen(server);
    try {
      await delay(1_500);
      proxy.blackholeAll(false);
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        listening.then(() => 'listening'),
        new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still hanging'), 15_000))),
      ]);
      clearTimeout(timer);
      expect(outcome).toBe('listening');
    } finally {
      await server.close();
      await listening.catch(() => undefined);
    }
  });
});
