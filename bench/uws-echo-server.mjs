// The floor's bare uWS server: echoes every text frame, holds idle sockets, nothing else.
// Prints `listening <port>` once it listens on a free port of 127.0.0.1.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../services/gateway/package.json', import.meta.url));
const uws = require('uWebSockets.js');

uws
  .App()
  .ws('/ws', {
    compression: uws.DISABLED,
    maxPayloadLength: 1024 * 1024,
    idleTimeout: 960,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary);
    },
  })
  .listen('127.0.0.1', 0, (socket) => {
    if (!socket) {
      console.error('cannot listen');
      process.exit(1);
    }
    console.log(`listening ${uws.us_socket_local_port(socket)}`);
  });
