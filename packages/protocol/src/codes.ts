/** Error codes of PROTOCOL.md: the only values `error.code` ever takes. */
export const ERROR_CODES = [
  'bad_request',
  'too_large',
  'rate_limited',
  'unauthorized',
  'llm_unavailable',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** WebSocket close codes of PROTOCOL.md. */
export const CloseCode = {
  normal: 1000,
  draining: 1001,
  tooLarge: 1009,
  tryAgainLater: 1013,
  replaced: 4001,
  badToken: 4401,
  heartbeatTimeout: 4408,
  tooSlow: 4413,
  tooMany: 4429,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export const PROTOCOL_VERSION = 1;
