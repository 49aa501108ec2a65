import { describe, expect, it } from 'vitest';
import { parseClientFrame, utf8ByteLength } from './parse-client-frame.js';

const limits = { maxMessageBytes: 100 };
const parse = (text: string) => parseClientFrame(text, utf8ByteLength(text), limits);

describe('parseClientFrame', () => {
  it('accepts each client frame type', () => {
    expect(parse('{"type":"ping"}')).toEqual({ ok: true, frame: { type: 'ping' } });
    expect(parse('{"type":"chat","id":"m-1","text":"hi"}')).toEqual({
      ok: true,
      frame: { type: 'chat', id: 'm-1', text: 'hi' },
    });
    expect(parse('{"type":"cancel","id":"m_1"}')).toMatchObject({ ok: true });
    expect(parse('{"type":"resume","lastEventId":"1730760123450-0"}')).toMatchObject({ ok: true });
  });

  it.each([
    ['not json', 'frame is not valid JSON'],
    ['[1,2]', 'frame must be a JSON object'],
    ['null', 'frame must be a JSON object'],
    ['{"kind":"chat"}', 'unknown frame type missing; expected one of ping, chat, cancel, resume'],
    ['{"type":"shout"}', "unknown frame type 'shout'; expected one of ping, chat, cancel, resume"],
    [
      '{"type":"chat","id":"has space","text":"x"}',
      'chat.id must be 1-64 characters of [A-Za-z0-9_-]',
    ],
    ['{"type":"chat","id":"a","text":""}', 'chat.text must not be empty'],
    ['{"type":"chat","id":"a","text":5}', 'chat.text must be a string'],
    [
      '{"type":"resume","lastEventId":"abc"}',
      'resume.lastEventId must be an eventId received from the server',
    ],
  ])('rejects %s with a precise bad_request', (text, message) => {
    expect(parse(text)).toMatchObject({ ok: false, code: 'bad_request', message });
  });

  it('keeps the chat id of a rejected chat so the client can match the error', () => {
    expect(parse('{"type":"chat","id":"m1","text":""}')).toMatchObject({ ok: false, id: 'm1' });
  });

  it('rejects chat text over the byte limit as too_large, counting UTF-8 bytes', () => {
    const text = 'é'.repeat(51); // 102 bytes, 51 characters
    expect(parse(JSON.stringify({ type: 'chat', id: 'a', text }))).toMatchObject({
      ok: false,
      code: 'too_large',
      id: 'a',
    });
    expect(parse(JSON.stringify({ type: 'chat', id: 'a', text: 'é'.repeat(50) }))).toMatchObject({
      ok: true,
    });
  });

  it('rejects a frame far over the limit before parsing it', () => {
    const huge = JSON.stringify({ type: 'chat', id: 'a', text: 'x'.repeat(5000) });
    expect(parse(huge)).toEqual({
      ok: false,
      code: 'too_large',
      message: `frame of ${utf8ByteLength(huge)} bytes exceeds the limit of 1624 bytes`,
    });
  });

  it('accepts a text at the limit however JSON escapes it (up to six bytes a character)', () => {
    for (const char of ['\u0001', '"', '\\', '\n', '\ud800']) {
      const frame = JSON.stringify({
        type: 'chat',
        id: 'a',
        text: char.repeat(limits.maxMessageBytes / 3),
      });
      expect(parse(frame), JSON.stringify(char)).toMatchObject({ ok: true });
    }
    const controls = JSON.stringify({ type: 'chat', id: 'a', text: '\u0001'.repeat(100) });
    expect(utf8ByteLength(controls)).toBeGreaterThan(600);
    expect(parse(controls)).toMatchObject({ ok: true });
  });

  it('counts surrogate pairs as four bytes', () => {
    expect(utf8ByteLength('😀')).toBe(4);
    expect(utf8ByteLength('aé€')).toBe(6);
  });
});
