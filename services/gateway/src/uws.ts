import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

const require = createRequire(import.meta.url);

/**
 * uWebSockets.js, and whether its native binary loaded. The package silently swaps in a slow
 * `ws`-based shim when the binary does not fit this platform; callers must say so loudly.
 */
export const uws = require('uWebSockets.js') as typeof UWS;
export const uwsNative = Object.keys(require.cache).some((path) => /uws_[^/\\]+\.node$/.test(path));

export type {
  TemplatedApp,
  WebSocket,
  HttpResponse,
  HttpRequest,
  us_listen_socket,
} from 'uWebSockets.js';
