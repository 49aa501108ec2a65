import { connect } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from './support/test-cluster.js';

/**
 * A socket that stops reading must not lose frames silently: once MAX_BACKPRESSURE_BYTES wait for
 * it, the gateway closes it, and its client resumes from the log with nothing missing.
 */
describe('slow consumer', () => {
  let cluster: TestCluster;
  const MESSAGES = 1_000;
  const TEXT = 'x'.repeat(15_000);

  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 1,
      workers: 0,
      gatewayEnv: { MAX_BACKPRESSURE_BYTES: '1048576', CHAT_BURST: '0', EVENTS_MAXLEN: '5000' },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const metric = async (pattern: RegExp) => {
    const text = await (await fetch(`${cluster.gateway(0).url}/metrics`)).text();
    return Number(pattern.exec(text)?.[1] ?? 0);
  };
  const socket = (query = '') =>
    new WebSocket(`${cluster.gateway(0).wsUrl}${query}`, {
      headers: { Origin: 'http://localhost:8080' },
    });

  /** Stores MESSAGES large chats in one session, ten at a time; resolves with its credentials. */
  const fillSession = () =>
    new Promise<{ session: string; token: string }>((resolve, reject) => {
      const writer = socket();
      let acks = 0;
      let credentials = { session: '', token: '' };
      const sendBatch = () => {
        for (let i = acks; i < acks + 10; i++)
          writer.send(JSON.stringify({ type: 'chat', id: `m${i}`, text: TEXT }));
      };
      writer.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString('utf8')) as {
          type: string;
          sessionId?: string;
          token?: string;
        };
        if (frame.type === 'welcome') {
          credentials = { session: frame.sessionId ?? '', token: frame.token ?? '' };
          sendBatch();
        } else if (frame.type === 'ack' && ++acks % 10 === 0) {
          if (acks < MESSAGES) sendBatch();
          else writer.close();
        }
      });
      writer.on('close', () =>
        acks === MESSAGES
          ? resolve(credentials)
          : reject(new Error(`writer closed after ${acks} acks`)),
      );
    });

  it('closes a socket that stops reading, and its client then replays everything', async () => {
    const { session, token } = await fillSession();
    const query = `?${new URLSearchParams({ session, token, lastEventId: '0-0' }).toString()}`;

    // A client that asks for the whole log (about 15 MB) and then reads nothing.
    const stalled = connect(cluster.gateway(0).port, '127.0.0.1', () => {
      stalled.write(
        `GET /ws${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      stalled.pause();
    });
    const closedAbruptly = /chorus_ws_connections_closed_total\{code="1006"[^}]*\} (\d+)/;
    await expect.poll(() => metric(closedAbruptly), { timeout: 30_000, interval: 250 }).toBe(1);
    await expect.poll(() => metric(/^chorus_ws_connections\{[^}]*\} (\d+)/m)).toBe(0);
    stalled.destroy();

    // The same client, back and reading, gets every message once.
    const reader = socket(query);
    const ids = new Set<string>();
    let received = 0;
    reader.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as { type: string; id?: string };
      if (frame.type !== 'user.message') return;
      received++;
      ids.add(frame.id ?? '');
    });
    await expect.poll(() => received, { timeout: 30_000, interval: 100 }).toBe(MESSAGES);
    expect(ids.size).toBe(MESSAGES);
    reader.terminate();
  });
});
