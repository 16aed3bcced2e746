import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of a real server, so a test can take the network away and
 * give it back: `cut()` drops every open connection and refuses new ones, `hang()` turns it into
 * a black hole (connections stay open and new ones are accepted, but nothing is forwarded either
 * way), `restore()` forwards again on the same port.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private listeningPort = 0;
  private hanging = false;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** The port clients connect to; stable across cut() and restore(). */
  get port(): number {
    if (this.listeningPort === 0) throw new Error('TcpProxy: start() it first');
    return this.listeningPort;
  }

  /** Listens on an ephemeral port. */
  async start(): Promise<void> {
    if (this.listeningPort !== 0) throw new Error('TcpProxy: already started');
    this.listeningPort = await this.listen(0);
  }

  /** Destroys every open connection (both sides) and stops listening: connects are refused. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * A black hole: every open connection stops forwarding (bytes sent into it are never answered)
   * and new connections are accepted and held without reaching the server.
   */
  hang(): void {
    this.hanging = true;
    for (const socket of this.sockets) {
      socket.unpipe();
      socket.pause();
    }
  }

  /** Forwards again, on the same port as before; connections held by hang() are dropped. */
  async restore(): Promise<void> {
    if (this.hanging) {
      this.hanging = false;
      for (const socket of this.sockets) socket.destroy();
      this.sockets.clear();
    }
    if (this.server) return;
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.cut();
  }

  private listen(port: number): Promise<number> {
    const server = net.createServer((downstream) => this.forward(downstream));
    return new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
        server.off('error', reject);
        this.server = server;
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  private forward(downstream: net.Socket): void {
    if (this.hanging) {
      this.sockets.add(downstream);
      downstream.on('error', () => downstream.destroy());
      downstream.on('close', () => this.sockets.delete(downstream));
      downstream.pause();
      return;
    }
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort });
    this.sockets.add(downstream);
    this.sockets.add(upstream);
    const drop = () => {
      downstream.destroy();
      upstream.destroy();
      this.sockets.delete(downstream);
      this.sockets.delete(upstream);
    };
    // A reset on either side ends the pair; errors are expected here and must not throw.
    downstream.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  }
}
