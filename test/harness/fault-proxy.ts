import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';

export interface ProxyTarget {
  host: string;
  port: number;
}

/** How many of a client's first bytes are kept to match connections by name (CLIENT SETNAME). */
const HEAD_BYTES = 4096;

/** Selects connections by a string their client sent first, e.g. a connection name `orders:sub`; all when omitted. */
export interface ConnectionMatch {
  match?: string;
}

/** Which way a partition holds bytes: both, only towards the server, or only towards the client (a muted return path). */
export type PartitionDirection = 'both' | 'to-server' | 'to-client';

export interface Partition {
  /** Delivers everything held, in order in each direction, and forwards normally again. */
  heal(): void;
}

/** Client bytes buffered while an upstream connects; above this the client socket is paused. */
const PENDING_HIGH_WATER = 1024 * 1024;

/** One client connection and the upstream connection it is currently forwarded to. */
class Link {
  upstream: Socket | undefined;
  /** true once `upstream` is connected; client bytes are buffered in `pending` until then */
  upstreamReady = false;
  pending: Buffer[] = [];
  pendingBytes = 0;
  /** dead: bytes are dropped in both directions and closes are not propagated */
  blackholed = false;
  /** partitioned: bytes are held (as TCP would retransmit them) until the partition heals; `up` is client -> server */
  held: { up?: Buffer[]; down?: Buffer[] } | undefined;
  /** the first bytes the client sent (its handshake, with CLIENT SETNAME): what `match` options look at */
  head = '';
  clientEnded = false;
  closed = false;

  constructor(readonly client: Socket) {}
}

/**
 * A TCP proxy on 127.0.0.1 between a Redis client and redis-server, with faults the test controls:
 * silent death (blackhole), a partition that heals (partition), abrupt reset, refused connections
 * and moving live connections to another server (reroute). Blackhole, partition and reroute can
 * target single connections by what their client sent (`match`, e.g. a connection name). Bytes are forwarded unmodified, with backpressure in both directions.
 */
export class FaultProxy {
  private readonly links = new Set<Link>();
  /** every upstream socket not yet closed, including zombies kept open behind dead links */
  private readonly upstreams = new Set<Socket>();
  private blackholeNew = false;
  private holdNew: ((link: Link) => void) | undefined;
  private refusing = false;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    private target: ProxyTarget,
    readonly port: number,
  ) {
    server.on('connection', (socket) => this.onConnection(socket));
  }

  /** Starts a proxy to `target`, listening on 127.0.0.1 on a free port. */
  static start(target: ProxyTarget): Promise<FaultProxy> {
    checkTarget(target);
    return new Promise<FaultProxy>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        server.off('error', reject);
        server.on('error', () => {
          /* a listening server has no errors worth crashing a test run for */
        });
        const address = server.address();
        if (address === null || typeof address === 'string') {
          server.close();
          reject(new Error(`FaultProxy: unexpected listen address ${String(address)}`));
          return;
        }
        resolve(new FaultProxy(server, { host: target.host, port: target.port }, address.port));
      });
    });
  }

  /** redis://127.0.0.1:port */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Live client-side sockets (blackholed ones included; refused ones never count). */
  get connectionCount(): number {
    return this.links.size;
  }

  /** Where new connections (and rerouted ones) are sent. */
  get currentTarget(): ProxyTarget {
    return { ...this.target };
  }

  /**
   * The silent death: every CURRENT (matching) connection stops forwarding in both directions. Bytes
   * are read and dropped, both sockets stay open, and no end/reset is propagated either way (a zombie
   * upstream stays connected to the server until reset() or close(); with `halfOpen` the upstream is
   * closed at once, so the server forgets the client while the client never hears of it). Connections accepted later
   * are forwarded normally. Note: the proxy's kernel still ACKs, so TCP keepalive cannot notice.
   */
  blackhole({ match, halfOpen = false }: ConnectionMatch & { halfOpen?: boolean } = {}): void {
    for (const link of this.matching(match)) {
      this.kill(link);
      // Half-open: the server side is gone too (Redis drops the client), the client never hears of it.
      if (halfOpen) link.upstream?.destroy();
    }
  }

  /**
   * A partition that heals: CURRENT matching connections (and, with `newConnections`, every one
   * accepted until heal()) stop forwarding in `direction` (both by default), but nothing is dropped:
   * bytes are held and delivered in order on heal(), as TCP retransmission would after a network
   * partition. No end/reset crosses a partition while it lasts.
   */
  partition({
    match,
    newConnections = false,
    direction = 'both',
  }: ConnectionMatch & { newConnections?: boolean; direction?: PartitionDirection } = {}): Partition {
    const held = new Set<Link>();
    const hold = (link: Link) => {
      link.held ??= {};
      if (direction !== 'to-client') link.held.up ??= [];
      if (direction !== 'to-server') link.held.down ??= [];
      held.add(link);
    };
    for (const link of this.matching(match)) hold(link);
    if (newConnections) this.holdNew = hold;
    let healed = false;
    return {
      heal: () => {
        if (healed) return;
        healed = true;
        if (this.holdNew === hold) this.holdNew = undefined;
        for (const link of held) this.release(link);
      },
    };
  }

  /** While on, connections accepted are blackholed from the start (never forwarded, no upstream); existing ones are blackholed too. */
  blackholeAll(on: boolean): void {
    this.blackholeNew = on;
    if (on) this.blackhole();
  }

  /** Destroys every client and upstream socket abruptly (RST, so peers see ECONNRESET). */
  reset(): void {
    for (const link of [...this.links]) this.abortClient(link);
    for (const upstream of [...this.upstreams]) abort(upstream);
  }

  /** While on, new connections are accepted and immediately reset (a down server behind a load balancer). */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  /**
   * Moves every CURRENT client connection to a new upstream connection to `target` without closing
   * the client socket (the old upstream connection is closed, so its server-side state such as
   * SUBSCRIBE, AUTH, HELLO or SELECT is gone), and sends new connections there too. Client bytes
   * arriving meanwhile are buffered and forwarded. Resolves when every new upstream is connected;
   * rejects if some could not connect (those client sockets are reset).
   */
  async reroute(target: ProxyTarget, { match }: ConnectionMatch = {}): Promise<void> {
    checkTarget(target);
    // Only the matching connections move when `match` is given; new ones keep going to the old target.
    if (match === undefined) this.target = { host: target.host, port: target.port };
    const moves: Promise<void>[] = [];
    for (const link of this.matching(match)) {
      const old = link.upstream;
      moves.push(this.attachUpstream(link, { host: target.host, port: target.port }));
      if (old !== undefined) old.destroy();
    }
    const results = await Promise.allSettled(moves);
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failures.length > 0) {
      throw new Error(
        `FaultProxy.reroute: ${failures.length}/${results.length} connections could not reach ` +
          `${target.host}:${target.port}: ${failures.map((f) => String(f.reason)).join('; ')}`,
      );
    }
  }

  /** Stops listening and destroys every socket. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.reset();
    });
    return this.closing;
  }

  private onConnection(client: Socket): void {
    client.on('error', () => {
      /* ECONNRESET & co: the 'close' handler does the bookkeeping */
    });
    if (this.closing !== undefined || this.refusing) {
      abort(client);
      return;
    }
    try {
      this.accept(client);
    } catch {
      abort(client);
    }
  }

  /** Resets a client socket and forgets its link at once (so connectionCount drops synchronously). */
  private abortClient(link: Link): void {
    link.closed = true;
    this.links.delete(link);
    abort(link.client);
  }

  private accept(client: Socket): void {
    client.setNoDelay(true);
    const link = new Link(client);
    this.links.add(link);
    client.on('data', (chunk: Buffer) => this.fromClient(link, chunk));
    client.on('end', () => {
      link.clientEnded = true;
      if (!link.blackholed && link.upstreamReady) link.upstream?.end();
    });
    client.on('close', () => {
      link.closed = true;
      this.links.delete(link);
      if (!link.blackholed) link.upstream?.destroy();
    });
    if (this.blackholeNew) {
      link.blackholed = true;
      return;
    }
    this.holdNew?.(link);
    this.attachUpstream(link, this.target).catch(() => {
      /* the client socket has been reset; nothing else to report */
    });
  }

  private matching(match: string | undefined): Link[] {
    return [...this.links].filter((link) => match === undefined || link.head.includes(match));
  }

  private release(link: Link): void {
    const held = link.held;
    if (!held) return;
    link.held = undefined;
    for (const chunk of held.up ?? []) this.fromClient(link, chunk);
    const upstream = link.upstream;
    if (upstream) for (const chunk of held.down ?? []) this.fromUpstream(link, upstream, chunk);
  }

  private kill(link: Link): void {
    link.blackholed = true;
    link.pending = [];
    link.pendingBytes = 0;
    // keep reading so that bytes are dropped rather than left in the kernel buffers
    if (link.client.isPaused()) link.client.resume();
    if (link.upstream?.isPaused()) link.upstream.resume();
  }

  /** Connects a new upstream for `link` and makes it the current one; resolves once connected. */
  private attachUpstream(link: Link, target: ProxyTarget): Promise<void> {
    const upstream = netConnect({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    this.upstreams.add(upstream);
    link.upstream = upstream;
    link.upstreamReady = false;
    return new Promise<void>((resolve, reject) => {
      let connected = false;
      let lastError: Error | undefined;
      upstream.on('error', (err) => {
        lastError = err;
      });
      upstream.once('connect', () => {
        connected = true;
        if (link.upstream !== upstream || link.closed) {
          // superseded by another reroute, or the client went away meanwhile
          upstream.destroy();
          resolve();
          return;
        }
        link.upstreamReady = true;
        const pending = link.pending;
        link.pending = [];
        link.pendingBytes = 0;
        if (!link.blackholed) {
          for (const chunk of pending) upstream.write(chunk);
          if (link.clientEnded) upstream.end();
        }
        if (link.client.isPaused()) link.client.resume();
        resolve();
      });
      upstream.on('data', (chunk: Buffer) => this.fromUpstream(link, upstream, chunk));
      upstream.on('end', () => {
        if (link.upstream === upstream && !link.blackholed && !link.held) link.client.end();
      });
      upstream.once('close', (hadError) => {
        this.upstreams.delete(upstream);
        const current = link.upstream === upstream;
        if (current) link.upstreamReady = false;
        if (!connected) {
          if (current && !link.closed) {
            reject(lastError ?? new Error(`connection to ${target.host}:${target.port} closed before connecting`));
          } else {
            resolve();
          }
        }
        if (!current || link.blackholed || link.held || link.closed) return;
        // the server (or the network) closed the connection: let the client see it
        if (hadError || !connected) this.abortClient(link);
        else link.client.end();
      });
    });
  }

  private fromClient(link: Link, chunk: Buffer): void {
    if (link.head.length < HEAD_BYTES) link.head += chunk.toString('latin1', 0, HEAD_BYTES - link.head.length);
    if (link.blackholed) return;
    if (link.held?.up) {
      link.held.up.push(chunk);
      return;
    }
    const upstream = link.upstream;
    if (upstream === undefined || !link.upstreamReady) {
      link.pending.push(chunk);
      link.pendingBytes += chunk.length;
      if (link.pendingBytes > PENDING_HIGH_WATER && !link.client.isPaused()) link.client.pause();
      return;
    }
    if (upstream.destroyed) return;
    if (!upstream.write(chunk) && !link.client.isPaused()) {
      link.client.pause();
      upstream.once('drain', () => {
        if (link.upstream === upstream && link.client.isPaused()) link.client.resume();
      });
    }
  }

  private fromUpstream(link: Link, upstream: Socket, chunk: Buffer): void {
    if (link.upstream !== upstream || link.blackholed) return;
    if (link.held?.down) {
      link.held.down.push(chunk);
      return;
    }
    const client = link.client;
    if (client.destroyed) return;
    if (!client.write(chunk) && !upstream.isPaused()) {
      upstream.pause();
      client.once('drain', () => {
        if (upstream.isPaused()) upstream.resume();
      });
    }
  }
}

function checkTarget(target: ProxyTarget): void {
  if (typeof target?.host !== 'string' || !Number.isInteger(target.port) || target.port <= 0) {
    throw new TypeError(`FaultProxy: invalid target ${JSON.stringify(target)}`);
  }
}

/** Destroys a socket with an RST where possible so the peer sees ECONNRESET. */
function abort(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || typeof socket.resetAndDestroy !== 'function') {
    socket.destroy();
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}
