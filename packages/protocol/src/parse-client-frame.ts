import { ClientFrame, CLIENT_FRAME_TYPES, type ClientFrameType } from './client-frames.js';
import type { ErrorCode } from './codes.js';

export interface FrameLimits {
  /** Largest chat text, in UTF-8 bytes. */
  maxMessageBytes: number;
}

/** Room for the JSON envelope around a chat text that is exactly at the limit. */
const ENVELOPE_BYTES = 1024;

/**
 * The largest frame a valid chat can need: JSON may escape one byte of text as six (`\u0001`),
 * plus the envelope. A larger frame gets `too_large` unread.
 */
export const frameLimit = (limits: FrameLimits) => 6 * limits.maxMessageBytes + ENVELOPE_BYTES;

/** Past twice the frame limit a gateway does not decode a frame at all: it closes with 1009. */
export const closeLimit = (limits: FrameLimits) => 2 * frameLimit(limits);

export type ParseResult =
  | { ok: true; frame: ClientFrame }
  | { ok: false; code: ErrorCode; message: string; frameType?: ClientFrameType; id?: string };

/** UTF-8 size of a string without allocating (the package also runs in browsers). */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3; // includes a lone surrogate, which UTF-8 encoders replace with U+FFFD
  }
  return bytes;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** Never more than `limit` code points of a client's input in a message back to it. */
function clip(text: string, limit: number): string {
  return Array.from(text).slice(0, limit).join('');
}

function isKnownType(type: unknown): type is ClientFrameType {
  return typeof type === 'string' && (CLIENT_FRAME_TYPES as readonly string[]).includes(type);
}

/**
 * Turns one text frame into a typed client frame, or into the precise error the client gets.
 * `byteLength` is the frame's size on the wire, known before decoding.
 */
export function parseClientFrame(
  text: string,
  byteLength: number,
  limits: FrameLimits,
): ParseResult {
  if (byteLength > frameLimit(limits)) {
    return {
      ok: false,
      code: 'too_large',
      message: `frame of ${byteLength} bytes exceeds the limit of ${frameLimit(limits)} bytes`,
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, code: 'bad_request', message: 'frame is not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'bad_request', message: 'frame must be a JSON object' };
  }
  const type = (value as { type?: unknown }).type;
  if (!isKnownType(type)) {
    const shown = typeof type === 'string' ? `'${clip(type, 32)}'` : 'missing';
    return {
      ok: false,
      code: 'bad_request',
      message: `unknown frame type ${shown}; expected one of ${CLIENT_FRAME_TYPES.join(', ')}`,
    };
  }
  const parsed = ClientFrame.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') ?? '';
    const rawId = (value as { id?: unknown }).id;
    return {
      ok: false,
      code: 'bad_request',
      message: `${type}${field ? '.' + field : ''} ${issue?.message ?? 'is invalid'}`,
      frameType: type,
      ...(typeof rawId === 'string' && rawId.length <= 64 ? { id: rawId } : {}),
    };
  }
  const frame = parsed.data;
  if (frame.type === 'chat' && utf8ByteLength(frame.text) > limits.maxMessageBytes) {
    return {
      ok: false,
      code: 'too_large',
      message: `chat.text exceeds the limit of ${limits.maxMessageBytes} bytes`,
      frameType: 'chat',
      id: frame.id,
    };
  }
  return { ok: true, frame };
}
