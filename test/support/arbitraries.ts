import fc from 'fast-check';

/**
 * fast-check inputs shared by the fuzz tests of the protocol parser and of a running gateway.
 */

const surrogateHalf = fc
  .integer({ min: 0xd800, max: 0xdfff })
  .map((code) => String.fromCharCode(code));

/** One character that breaks naive code: controls, separators, BOM, astral, surrogate halves. */
export const nastyChar = fc.oneof(
  fc.constantFrom('\u0000', '\n', '"', '\\', '\u2028', '\ufeff', '\uffff', 'é', '€', '😀', ' '),
  surrogateHalf,
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }),
);

/** At most 24 characters of at most 4 UTF-8 bytes (96 bytes): far below any message limit. */
export const nastyString = fc.string({ unit: nastyChar, maxLength: 24 });

export const digits = (min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });

/** The characters of a chat id. */
export const idChar = fc.constantFrom(
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-',
);

/** A valid chat id: 1–64 id characters. */
export const chatId = fc.string({ unit: idChar, minLength: 1, maxLength: 64 });

/** A valid eventId: a Redis stream id, two numbers of at most 19 digits (below 2^64). */
export const eventId = fc.tuple(digits(1, 19), digits(1, 19)).map(([ms, seq]) => `${ms}-${seq}`);

/** A change to one field of a frame: its removal, or a new value. */
export type Mutation = { op: 'delete'; key: string } | { op: 'set'; key: string; value: unknown };

/** `frame` with `mutations` applied, in order, on a copy. */
export function mutated(
  frame: Record<string, unknown>,
  mutations: Mutation[],
): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...frame };
  for (const m of mutations) {
    if (m.op === 'delete') delete copy[m.key];
    // defineProperty: '__proto__' becomes an own field, as JSON.parse would make it.
    else
      Object.defineProperty(copy, m.key, {
        value: m.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return copy;
}
