import { connect, createServer, type Socket } from 'node:net';

export interface FreezableProxy {
  /** A Redis URL through the proxy. */
  url: string;
  /**
   * Stops forwarding, both ways, on the connection that Redis sees coming from `upstreamPort`
   * (its `addr` in CLIENT LIST), and closes neither side: a peer gone silent, as behind a
   * network partition.
   */
  freeze(upstreamPort: number): void;
  close(): Promise<void>;
}

/** A TCP proxy to `target` (a `redis://host:port` URL) whose connections a test can freeze. */
export async function startFreezableProxy(target: string): Promise<FreezableProxy> {
  const { hostname, port } = new URL(target);
  const pairs = new Map<number, { client: Socket; upstream: Socket }>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname, () => {
      pairs.set(upstream.localPort!, { client, upstream });
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) socket.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    url: `redis://127.0.0.1:${address.port}`,
    freeze(upstreamPort) {
      const pair = pairs.get(upstreamPort);
      if (!pair) throw new Error(`no proxied connection from port ${upstreamPort}`);
      pair.client.unpipe(pair.upstream);
      pair.upstream.unpipe(pair.client);
      pair.client.pause();
      pair.upstream.pause();
    },
    async close() {
      for (const { client, upstream } of pairs.values()) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
