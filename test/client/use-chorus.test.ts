import { setTimeout as sleep } from 'node:timers/promises';
import { createElement, StrictMode } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { memorySession } from '../../packages/client/src/index.js';
import { useChorus, type UseChorus } from '../../packages/client/src/react.js';
import { TestCluster } from '../support/test-cluster.js';
import { installDom } from './dom.js';
import { trackClientTimers, TrackedWebSocket } from './harness.js';

/** useChorus in a DOM (happy-dom), on `ws`, against a real gateway and worker. */
describe('useChorus', () => {
  let cluster: TestCluster;
  let dom: ReturnType<typeof installDom>;
  let root: Root | undefined;
  let container: ReturnType<typeof dom.window.document.createElement>;
  let latest: UseChorus | undefined;

  function Chat({ urls }: { urls: string[] }) {
    const chorus = useChorus({
      urls,
      WebSocket: TrackedWebSocket,
      storage: memorySession(),
      heartbeatMs: 300,
      random: () => 0.99,
      backoff: { baseMs: 5_000 },
    });
    latest = chorus;
    const reply = chorus.messages[0]?.reply;
    return createElement(
      'div',
      null,
      createElement(
        'p',
        { id: 'state' },
        `${chorus.connection.state} ${chorus.connection.gatewayId ?? ''}`,
      ),
      createElement('p', { id: 'reply' }, reply?.text ?? ''),
    );
  }

  const render = (urls: string[]) => {
    const { document } = dom.window;
    container = document.createElement('div');
    document.body.appendChild(container);
    root = createRoot(container);
    root.render(createElement(StrictMode, null, createElement(Chat, { urls })));
  };
  const text = (id: string) => container.querySelector(`#${id}`)?.textContent ?? '';
  const current = () => {
    if (!latest) throw new Error('not rendered');
    return latest;
  };

  beforeAll(async () => {
    dom = installDom();
    cluster = await TestCluster.start({
      gateways: 1,
      workers: 1,
      workerEnv: { OFFLINE_CHUNK_DELAY_MS: '10' },
    });
  });
  afterEach(() => {
    root?.unmount();
    root = undefined;
    latest = undefined;
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await sleep(50); // React's passive effects after the last unmount still read `window`
    await dom?.restore();
    await cluster?.stop();
  });

  it('shows the connection and a streaming reply, and leaves no timer behind on unmount', async () => {
    const timers = trackClientTimers();
    const listeners = new Map<string, number>();
    const count = (type: string, delta: number) =>
      listeners.set(type, (listeners.get(type) ?? 0) + delta);
    type Listen = (type: string, listener: () => void) => void;
    const global = globalThis as unknown as Record<
      'addEventListener' | 'removeEventListener',
      Listen
    >;
    const counted =
      (real: Listen, delta: number): Listen =>
      (type, listener) => {
        count(type, delta);
        real(type, listener);
      };
    const { addEventListener, removeEventListener } = global;
    vi.spyOn(global, 'addEventListener').mockImplementation(counted(addEventListener, 1));
    vi.spyOn(global, 'removeEventListener').mockImplementation(counted(removeEventListener, -1));
    const before = TrackedWebSocket.opened.length;

    render([cluster.gateway(0).wsUrl]);
    await vi.waitFor(() => expect(text('state')).toMatch(/^open gw-/), { timeout: 10_000 });
    expect(current().connection.gatewayId).toBe(cluster.gateway(0).gatewayId);

    const id = current().send('What is a hash table?');
    expect(id).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    await vi.waitFor(() => expect(text('reply')).toContain('offline mode'), { timeout: 15_000 });
    await vi.waitFor(() => expect(current().messages[0]?.status).toBe('done'), {
      timeout: 15_000,
    });
    expect(text('reply')).toBe(current().messages[0]?.reply?.text);
    // StrictMode mounts twice: the first client was closed at once, with its timers.
    expect(timers.pending()).toEqual(['interval']);
    expect(listeners.get('online')).toBe(1);

    root?.unmount();
    root = undefined;
    expect(timers.pending()).toEqual([]);
    expect(timers.created()).toBeGreaterThan(0);
    expect(listeners.get('online')).toBe(0);
    expect(listeners.get('offline')).toBe(0);
    const sockets = TrackedWebSocket.opened.slice(before);
    expect(sockets.length).toBeGreaterThan(0);
    expect(sockets.every((s) => s.readyState >= TrackedWebSocket.CLOSING)).toBe(true);
  });

  it('unmounted while waiting out a backoff: the reconnect timer goes too', async () => {
    const timers = trackClientTimers();
    render(['ws://127.0.0.1:9/ws']);
    await vi.waitFor(() => expect(current().connection.retryAt).toBeDefined(), { timeout: 5_000 });
    expect(text('state')).toMatch(/^reconnecting/);
    expect(timers.pending()).toEqual(['timeout']);
    root?.unmount();
    root = undefined;
    expect(timers.pending()).toEqual([]);
  });
});
