import { Queue, type ConnectionOptions } from 'bullmq';
import { CHAT_QUEUE, type KeySchema } from './keys.js';

/** One job per acked message; the worker answers the session's inbox in order. */
export interface ChatJobData {
  sessionId: string;
  messageId: string;
}

/** Deterministic, so a resent message never makes a second job while the first exists. */
export const chatJobId = (data: ChatJobData) => `${data.sessionId}.${data.messageId}`;

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

export async function enqueueChat(queue: Queue<ChatJobData>, data: ChatJobData): Promise<void> {
  await queue.add(CHAT_QUEUE, data, { jobId: chatJobId(data) });
}
