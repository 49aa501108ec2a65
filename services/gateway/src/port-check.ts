import { createServer } from 'node:net';
import { ConfigError } from '@chorus/config';

/**
 * Fails when `host:port` is taken. uSockets binds its listen sockets with SO_REUSEPORT, so a
 * second gateway started on a taken port would silently share it with the first; a plain bind
 * first gets EADDRINUSE instead.
 */
export function ensurePortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? ConfigError.about('PORT', `${host}:${port} is already in use by another process`)
          : error,
      ),
    );
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
