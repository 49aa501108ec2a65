import { Queue, type ConnectionOptions } from 'bullmq';
import { CHAT_QUEUE, type KeySchema } from './keys.js';

/**
 * A job says "this session has messages waiting": the worker that takes it answers the session's
 * inbox in order until it is empty. `messageId` is the message whose acceptance queued it.
 */
export interface ChatJobData {
  sessionId: string;
  messageId: string;
}

export function createChatQueue(
  connection: ConnectionOptions,
  keys: KeySchema,
): Queue<ChatJobData> {
  return new Queue<ChatJobData>(CHAT_QUEUE, {
    connection,
    prefix: keys.queuePrefix,
    defaultJobOptions: {
      attempts: 10,
      backoff: { type: 'exponential', delay: 1_000 },
      removeOnComplete: { age: 3_600, count: 10_000 },
      removeOnFail: { age: 7 * 86_400 },
    },
  });
}

/** A session's job key while its lease is free: its fence counter names the next holder's turn. */
export const sessionJobKey = (sessionId: string, fence: number | string) => `${sessionId}#${fence}`;

/**
 * Queues the session's job under `jobKey` (MessageInbox.accept): while a job with that key is
 * waiting, another add is a no-op, so the messages of one session share one job, and a message
 * resent after its gateway died finds that job or queues it.
 */
export async function enqueueChat(
  queue: Queue<ChatJobData>,
  data: ChatJobData,
  jobKey: string,
): Promise<void> {
  await queue.add(CHAT_QUEUE, data, { deduplication: { id: jobKey } });
}
