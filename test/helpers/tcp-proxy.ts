import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of a real server, so a test can take the network away and
 * give it back: `cut()` drops every open connection and refuses new ones, `restore()` listens
 * again on the same port.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private listeningPort = 0;

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

  /** Listens again, on the same port as before. */
  async restore(): Promise<void> {
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
