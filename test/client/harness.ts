import net from 'node:net';
import { vi } from 'vitest';
import WebSocket from 'ws';
import {
  ChorusClient,
  memorySession,
  type ChorusClientOptions,
  type ChorusState,
} from '../../packages/client/src/index.js';

/** `ws`'s WebSocket, remembering every socket it opened so that tests can break them. */
export class TrackedWebSocket extends WebSocket {
  static readonly opened: TrackedWebSocket[] = [];
  constructor(url: string) {
    super(url);
    TrackedWebSocket.opened.push(this);
  }
  static last(): TrackedWebSocket {
    const socket = TrackedWebSocket.opened.at(-1);
    if (!socket) throw new Error('no socket opened yet');
    return socket;
  }
}

const clients: ChorusClient[] = [];

/** A client on `ws` with its session in memory; closed by {@link closeClients}. */
export function newClient(urls: string[], options: Partial<ChorusClientOptions> = {}) {
  const client = new ChorusClient({
    urls,
    WebSocket: TrackedWebSocket,
    storage: memorySession(),
    ...options,
  });
  clients.push(client);
  return client;
}

export function closeClients(): void {
  for (const client of clients.splice(0)) client.close();
}

/** Resolves with the first state that matches, failing with the last state after a timeout. */
export function waitForState(
  client: ChorusClient,
  match: (state: ChorusState) => boolean,
  timeoutMs = 15_000,
): Promise<ChorusState> {
  return new Promise((resolve, reject) => {
    if (match(client.state)) {
      resolve(client.state);
      return;
    }
    const timer = setTimeout(() => {
      off();
      const { connection, messages } = client.state;
      reject(
        new Error(`state never matched: ${JSON.stringify({ connection, messages }).slice(0, 800)}`),
      );
    }, timeoutMs);
    const off = client.on('change', (state) => {
      if (!match(state)) return;
      clearTimeout(timer);
      off();
      resolve(state);
    });
  });
}

export const isOpen = (state: ChorusState) => state.connection.state === 'open';
export const replyDone = (id: string) => (state: ChorusState) =>
  state.messages.some((m) => m.id === id && m.reply?.done === true);

/**
 * Timers that code under packages/client creates, told apart from the test's own (and ws's) by
 * the call stack. `pending()` lists the ones neither fired (timeouts) nor cleared.
 */
export function trackClientTimers() {
  const live = new Map<unknown, 'timeout' | 'interval'>();
  // The caller is the first frame past this harness and the spy: ws's own close-handshake timer,
  // started when the client closes a socket, is not the client's.
  const fromClient = () => {
    const frames = (new Error().stack ?? '').split('\n').slice(1);
    const caller = frames.find((frame) => !/harness\.ts|@vitest|tinyspy/.test(frame)) ?? '';
    return /packages[\\/]client[\\/]src/.test(caller);
  };
  const real = {
    setTimeout: globalThis.setTimeout,
    clearTimeout: globalThis.clearTimeout,
    setInterval: globalThis.setInterval,
    clearInterval: globalThis.clearInterval,
  };
  let created = 0;
  const fakeSetTimeout = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const mine = fromClient();
    const id: unknown = real.setTimeout(() => {
      live.delete(id);
      fn(...args);
    }, ms);
    if (mine) {
      created++;
      live.set(id, 'timeout');
    }
    return id;
  };
  const fakeSetInterval = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const id: unknown = real.setInterval(fn, ms, ...args);
    if (fromClient()) {
      created++;
      live.set(id, 'interval');
    }
    return id;
  };
  const fakeClear = (kind: 'clearTimeout' | 'clearInterval') => (id: unknown) => {
    live.delete(id);
    real[kind](id as Parameters<typeof clearTimeout>[0]);
  };
  vi.spyOn(globalThis, 'setTimeout').mockImplementation(
    fakeSetTimeout as unknown as typeof setTimeout,
  );
  vi.spyOn(globalThis, 'setInterval').mockImplementation(
    fakeSetInterval as unknown as typeof setInterval,
  );
  vi.spyOn(globalThis, 'clearTimeout').mockImplementation(fakeClear('clearTimeout'));
  vi.spyOn(globalThis, 'clearInterval').mockImplementation(fakeClear('clearInterval'));
  return {
    pending: () => [...live.values()],
    created: () => created,
    restore: () => vi.restoreAllMocks(),
  };
}

/**
 * A TCP relay in front of a gateway that can go silent without closing anything, as a dead
 * network path does: the client must notice by itself.
 */
export async function startSilentableProxy(targetPort: number) {
  let silent = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    for (const [from, to] of [
      [inbound, outbound],
      [outbound, inbound],
    ] as const) {
      sockets.add(from);
      from.on('data', (chunk) => {
        if (!silent) to.write(chunk);
      });
      from.on('close', () => to.destroy());
      from.on('error', () => to.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    silence: () => {
      silent = true;
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
