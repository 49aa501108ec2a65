import fc from 'fast-check';
import {
  chatId,
  digits,
  eventId,
  idChar,
  mutated,
  type Mutation,
  nastyChar,
  nastyString,
} from '../../../test/support/arbitraries.js';
import { describe, expect, it } from 'vitest';
import { ClientFrame } from './client-frames.js';
import { parseClientFrame, utf8ByteLength, type ParseResult } from './parse-client-frame.js';

/**
 * Property tests of parseClientFrame against an oracle written from PROTOCOL.md and
 * docs/protocol.md (not from the parser): whatever text a client sends, the parser never throws,
 * accepts exactly the valid frames, and answers every other one with a short bad_request or
 * too_large that echoes at most 32 characters of what the client sent.
 */

const MAX = 100;
const limits = { maxMessageBytes: MAX };
/**
 * docs/protocol.md: a frame over 6 × maxMessageBytes (JSON may escape a byte of text as six)
 * plus 1 KiB of envelope is too_large.
 */
const FRAME_LIMIT = 6 * MAX + 1024;
const RUNS = 1000;

const CHAT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const EVENT_ID = /^\d{1,20}-\d{1,20}$/;
const U64_MAX = 2n ** 64n - 1n;
/** docs/protocol.md: an eventId is a Redis stream id that has a successor (ms below 2^64-1). */
const validEventId = (id: string) => {
  if (!EVENT_ID.test(id)) return false;
  const [ms = '', seq = ''] = id.split('-');
  return BigInt(ms) < U64_MAX && BigInt(seq) <= U64_MAX;
};

type Verdict = 'ok' | 'bad_request' | 'too_large';

interface Expectation {
  verdict: Verdict;
  /** The frame the parser must return for a valid one: its known fields only. */
  frame?: ClientFrame;
  /** Strings the client sent (type, id, text, lastEventId) that an error may echo 32 chars of. */
  sent: string[];
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const validId = (id: unknown): id is string => typeof id === 'string' && CHAT_ID.test(id);

/** What the contract says about one text frame of `Buffer.byteLength(text)` bytes. */
function expectation(text: string): Expectation {
  if (Buffer.byteLength(text, 'utf8') > FRAME_LIMIT) return { verdict: 'too_large', sent: [text] };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { verdict: 'bad_request', sent: [text] };
  }
  if (!isObject(value)) return { verdict: 'bad_request', sent: [text] };
  const { type, id, text: chatText, lastEventId } = value;
  const sent = [type, id, chatText, lastEventId].filter((v): v is string => typeof v === 'string');
  switch (type) {
    case 'ping':
      return { verdict: 'ok', frame: { type }, sent };
    case 'chat':
      if (!validId(id) || typeof chatText !== 'string' || chatText === '')
        return { verdict: 'bad_request', sent };
      if (Buffer.byteLength(chatText, 'utf8') > MAX) return { verdict: 'too_large', sent };
      return { verdict: 'ok', frame: { type, id, text: chatText }, sent };
    case 'cancel':
      return validId(id)
        ? { verdict: 'ok', frame: { type, id }, sent }
        : { verdict: 'bad_request', sent };
    case 'resume':
      return typeof lastEventId === 'string' && validEventId(lastEventId)
        ? { verdict: 'ok', frame: { type, lastEventId }, sent }
        : { verdict: 'bad_request', sent };
    default:
      return { verdict: 'bad_request', sent };
  }
}

function parse(text: string): ParseResult {
  return parseClientFrame(text, Buffer.byteLength(text, 'utf8'), limits);
}

/** The property every input must satisfy. */
function checkFrame(text: string): void {
  const want = expectation(text);
  const got = parse(text);
  if (got.ok) {
    expect(want.verdict, 'accepted a frame the contract rejects').toBe('ok');
    expect(got.frame).toEqual(want.frame);
    expect(ClientFrame.safeParse(got.frame).success).toBe(true);
    return;
  }
  expect(got.code).toBe(want.verdict);
  expect(typeof got.message).toBe('string');
  expect(got.message.length).toBeGreaterThan(0);
  expect(got.message.length).toBeLessThan(300);
  for (const sent of want.sent) {
    if (sent.length > 32) expect(got.message).not.toContain(sent.slice(0, 33));
  }
  if (got.id !== undefined) {
    expect(typeof got.id).toBe('string');
    expect(got.id.length).toBeLessThanOrEqual(64);
    expect(want.sent).toContain(got.id);
  }
  if (got.frameType !== undefined) expect(want.sent[0]).toBe(got.frameType);
}

// ---- arbitraries -------------------------------------------------------------------------------

const hugeId = fc.oneof(
  fc.string({ unit: idChar, minLength: 65, maxLength: 300 }),
  fc.nat({ max: 5000 }).map((n) => 'a'.repeat(65 + n)),
);
const chatText = fc.oneof(
  fc
    .string({ unit: nastyChar, minLength: 1, maxLength: 24 })
    .filter((t) => Buffer.byteLength(t, 'utf8') <= MAX),
  fc.integer({ min: 1, max: MAX }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: 1, max: MAX / 2 }).map((n) => 'é'.repeat(n)),
);
const typeVariant = fc.constantFrom(
  'Ping',
  'PING',
  ' ping',
  'ping ',
  'ping\u0000',
  'chat\n',
  'pong',
  'welcome',
  'error',
  '',
  '__proto__',
  'constructor',
  'toString',
  'p\u0131ng',
  'ｐｉｎｇ',
);
const extraFields = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), {
  maxKeys: 3,
});

/** Valid frames of each type, sometimes with extra fields (which the contract ignores). */
const validFrame: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.oneof(
      fc.constant({ type: 'ping' }),
      fc.record({ type: fc.constant('chat'), id: chatId, text: chatText }),
      fc.record({ type: fc.constant('cancel'), id: chatId }),
      fc.record({ type: fc.constant('resume'), lastEventId: eventId }),
    ),
    fc.option(extraFields, { nil: undefined }),
  )
  .map(([frame, extra]) => ({ ...extra, ...frame }));

const wrongValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    1e21,
    1e308,
    Number.MAX_SAFE_INTEGER + 2,
    '',
    [],
    {},
  ),
  nastyString,
  hugeId,
  chatId,
  eventId,
  typeVariant,
  fc.integer({ min: MAX - 2, max: MAX + 1500 }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: MAX - 2, max: MAX + 10 }).map((n) => 'x'.repeat(n)),
  // Frames around FRAME_LIMIT once the envelope is added.
  fc.integer({ min: FRAME_LIMIT - 80, max: FRAME_LIMIT }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: MAX / 2 - 1, max: MAX / 2 + 10 }).map((n) => 'é'.repeat(n)),
  fc.integer({ min: Math.floor(MAX / 3) - 1, max: MAX + 10 }).map((n) => '€'.repeat(n)),
  fc.tuple(digits(1, 25), digits(1, 25)).map(([ms, seq]) => `${ms}-${seq}`),
  fc.array(fc.string(), { maxLength: 3 }),
);

const fieldKey = fc.oneof(
  { arbitrary: fc.constantFrom('type', 'id', 'text', 'lastEventId'), weight: 6 },
  { arbitrary: fc.constantFrom('__proto__', 'constructor', 'extra', 'ID', 'Type'), weight: 1 },
  { arbitrary: fc.string({ maxLength: 6 }), weight: 1 },
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), key: fieldKey }),
  fc.record({ op: fc.constant('set' as const), key: fieldKey, value: wrongValue }),
);

/** Valid frames with one to three fields deleted, retyped, oversized or added. */
const nearValidFrame = fc
  .tuple(validFrame, fc.array(mutation, { minLength: 1, maxLength: 3 }))
  .map(([frame, mutations]) => mutated(frame, mutations));

const encode = (value: unknown, pretty: boolean): string =>
  JSON.stringify(value, null, pretty ? 2 : undefined) ?? 'undefined';

/** JSON with a bit cut off or spliced in: almost JSON. */
const brokenJson = fc
  .tuple(fc.json({ maxDepth: 2 }), fc.nat(), nastyString)
  .map(([json, at, junk]) => {
    const cut = at % (json.length + 1);
    return json.slice(0, cut) + junk + json.slice(cut + (at % 3));
  });

// ---- properties --------------------------------------------------------------------------------

describe('parseClientFrame (fuzz)', () => {
  it('never throws on arbitrary strings, and rejects them as the contract says', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: nastyChar, maxLength: 400 }),
          fc.string({ unit: 'binary', maxLength: 600 }),
          fc.string({ unit: 'grapheme', maxLength: 100 }),
          brokenJson,
          fc.nat({ max: 3000 }).map((n) => 'x'.repeat(n)),
          fc.integer({ min: FRAME_LIMIT - 2, max: FRAME_LIMIT + 2 }).map((n) => '"'.repeat(n)),
        ),
        checkFrame,
      ),
      { numRuns: RUNS },
    );
  });

  it('handles arbitrary JSON values', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue({ stringUnit: nastyChar }),
          fc.jsonValue({ maxDepth: 1 }),
          fc.record({ type: fc.oneof(fc.jsonValue({ maxDepth: 1 }), typeVariant) }),
          fc.record({ type: nastyString }),
          fc.record({ type: hugeId }),
        ),
        fc.boolean(),
        (value, pretty) => checkFrame(encode(value, pretty)),
      ),
      { numRuns: RUNS },
    );
  });

  it('answers near-valid frames (wrong types, missing, extra, huge, unicode fields) precisely', () => {
    fc.assert(
      fc.property(nearValidFrame, fc.boolean(), (frame, pretty) =>
        checkFrame(encode(frame, pretty)),
      ),
      { numRuns: 2 * RUNS },
    );
  });

  it('accepts every valid frame, returning its known fields', () => {
    fc.assert(
      fc.property(validFrame, fc.boolean(), (frame, pretty) => {
        const text = encode(frame, pretty);
        // Extra fields count towards the frame's size: a valid frame also fits in FRAME_LIMIT.
        fc.pre(Buffer.byteLength(text, 'utf8') <= FRAME_LIMIT);
        expect(expectation(text).verdict).toBe('ok');
        const got = parse(text);
        expect(got).toEqual({ ok: true, frame: expectation(text).frame });
      }),
      { numRuns: RUNS },
    );
  });

  it('utf8ByteLength agrees with UTF-8 encoding for well-formed strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
        expect(utf8ByteLength(text)).toBe(Buffer.byteLength(text, 'utf8'));
      }),
      { numRuns: RUNS },
    );
  });

  it('utf8ByteLength counts a lone surrogate as the 3 bytes UTF-8 encodes it in', () => {
    fc.assert(
      fc.property(fc.string({ unit: nastyChar, maxLength: 50 }), (text) => {
        expect(utf8ByteLength(text)).toBe(Buffer.byteLength(text, 'utf8'));
      }),
      { numRuns: RUNS },
    );
  });

  it('a chat text over the limit is too_large even when it holds lone surrogates', () => {
    const pair = fc
      .tuple(fc.integer({ min: 0xd800, max: 0xdbff }), fc.integer({ min: 0x80, max: 0xd7ff }))
      .map(([high, next]) => String.fromCharCode(high, next));
    fc.assert(
      fc.property(
        chatId,
        fc.array(pair, { minLength: Math.floor(MAX / 6) + 1, maxLength: MAX / 4 }),
        (id, pairs) => checkFrame(JSON.stringify({ type: 'chat', id, text: pairs.join('') })),
      ),
      { numRuns: 200 },
    );
  });

  it('error messages are well-formed Unicode when the frame is', () => {
    const astralChar = fc
      .integer({ min: 0x10000, max: 0x10ffff })
      .map((code) => String.fromCodePoint(code));
    const astral = fc.string({ unit: astralChar, minLength: 17, maxLength: 40 });
    fc.assert(
      fc.property(fc.constantFrom('', 'a'), astral, (prefix, rest) => {
        const got = parse(JSON.stringify({ type: prefix + rest }));
        expect(got.ok).toBe(false);
        if (!got.ok) expect(wellFormed(got.message)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

function wellFormed(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (code >= 0xdc00 && code <= 0xdfff) return false;
  }
  return true;
}
