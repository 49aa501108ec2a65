import { z } from 'zod';

/** Redis stream ids: `<ms>-<seq>`. They order session events. */
export const EVENT_ID_PATTERN = /^\d{1,20}-\d{1,20}$/;
const MAX_STREAM_ID_PART = 18_446_744_073_709_551_615n; // Redis stream ids are two 64-bit numbers

/** A well-formed eventId that Redis would accept as a stream id. */
export function isEventId(value: string): boolean {
  if (!EVENT_ID_PATTERN.test(value)) return false;
  const [ms = '', seq = ''] = value.split('-');
  // The last possible id has nothing after it: replay asks Redis for ids after this one.
  return BigInt(ms) < MAX_STREAM_ID_PART && BigInt(seq) <= MAX_STREAM_ID_PART;
}
export const CHAT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

const chatId = z
  .string({ error: 'must be a string' })
  .regex(CHAT_ID_PATTERN, { error: 'must be 1-64 characters of [A-Za-z0-9_-]' });
const eventId = z
  .string({ error: 'must be a string' })
  .refine(isEventId, { error: 'must be an eventId received from the server' });

export const PingFrame = z.object({ type: z.literal('ping') });
export const ChatFrame = z.object({
  type: z.literal('chat'),
  id: chatId,
  text: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }),
});
export const CancelFrame = z.object({ type: z.literal('cancel'), id: chatId });
export const ResumeFrame = z.object({ type: z.literal('resume'), lastEventId: eventId });

export const ClientFrame = z.discriminatedUnion('type', [
  PingFrame,
  ChatFrame,
  CancelFrame,
  ResumeFrame,
]);

export type PingFrame = z.infer<typeof PingFrame>;
export type ChatFrame = z.infer<typeof ChatFrame>;
export type CancelFrame = z.infer<typeof CancelFrame>;
export type ResumeFrame = z.infer<typeof ResumeFrame>;
export type ClientFrame = z.infer<typeof ClientFrame>;
export type ClientFrameType = ClientFrame['type'];
export const CLIENT_FRAME_TYPES: readonly ClientFrameType[] = ['ping', 'chat', 'cancel', 'resume'];

/** Orders two eventIds (`<ms>-<seq>`): negative when a is older than b. */
export function compareEventIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}
