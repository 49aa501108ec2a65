import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { FEED_OUTAGE_MS, FEED_SETTLE_MS, LiveFeed } from './live-feed.js';

/** What the gateway's sockets are told, in order, with the time it happens. */
let told: { code: number; at: number }[];
let feed: LiveFeed;
let start = 0;

beforeEach(() => {
  vi.useFakeTimers();
  told = [];
  feed = new LiveFeed((code) => told.push({ code, at: Date.now() - start }));
  start = Date.now();
});
afterEach(() => {
  feed.stop();
  vi.useRealTimers();
});

const after = (ms: number) => vi.advanceTimersByTime(ms);

it('a drop that comes back: down meanwhile, and the sockets are sent away once (1001) when it has stayed up', () => {
  feed.lost();
  expect(feed.isUp).toBe(false);
  after(300);
  feed.back();
  after(FEED_SETTLE_MS - 1);
  expect(feed.isUp).toBe(false);
  after(1);
  expect(feed.isUp).toBe(true);
  expect(told).toEqual([{ code: 1001, at: 300 + FEED_SETTLE_MS }]);
  after(60_000);
  expect(told).toHaveLength(1);
});

it('a drop that lasts: the sockets get 1013 after FEED_OUTAGE_MS, not 1001 again when it is back', () => {
  feed.lost();
  after(FEED_OUTAGE_MS);
  expect(told).toEqual([{ code: 1013, at: FEED_OUTAGE_MS }]);
  after(10_000);
  feed.back();
  after(FEED_SETTLE_MS);
  expect(feed.isUp).toBe(true);
  expect(told.map((t) => t.code)).toEqual([1013, 1013]);
});

it('a subscription that keeps failing: 1001 once, then 1013, and the outage counts from the first drop', () => {
  // Back within moments each time (as ioredis reports a dead shard's subscriber), then down again.
  feed.lost();
  after(200);
  feed.back();
  after(FEED_SETTLE_MS);
  after(1_000);
  feed.lost();
  after(200);
  feed.back();
  after(FEED_SETTLE_MS);
  expect(told.map((t) => t.code)).toEqual([1001, 1013]);
  after(1_000);
  feed.lost(); // and now it stays down: 5 s after the first drop, not after this one
  after(FEED_OUTAGE_MS);
  expect(told).toEqual([
    { code: 1001, at: 200 + FEED_SETTLE_MS },
    { code: 1013, at: 1_400 + 2 * FEED_SETTLE_MS },
    { code: 1013, at: FEED_OUTAGE_MS },
  ]);
});

it('a drop after the feed stayed up FEED_OUTAGE_MS is new trouble: 1001 again', () => {
  feed.lost();
  feed.back();
  after(FEED_SETTLE_MS + FEED_OUTAGE_MS);
  feed.lost();
  feed.back();
  after(FEED_SETTLE_MS);
  expect(told.map((t) => t.code)).toEqual([1001, 1001]);
});

it('two drops within the settling time send the sockets away once', () => {
  feed.lost();
  feed.back();
  after(FEED_SETTLE_MS / 2);
  feed.lost();
  feed.back();
  after(FEED_SETTLE_MS);
  expect(told.map((t) => t.code)).toEqual([1001]);
});

it('stopped, it tells the sockets nothing more, whatever its connection does then', () => {
  feed.lost();
  feed.stop();
  after(60_000);
  feed.back();
  after(60_000);
  feed.lost(); // the gateway disconnects the subscriber as it stops
  after(60_000);
  expect(told).toEqual([]);
});
