import { closeLimit } from '@chorus/protocol';
import { z } from 'zod';
import {
  bool,
  ConfigError,
  instanceId,
  int,
  keyPrefix,
  logLevel,
  parseEnv,
  redisUrl,
  sessionRetention,
  type Env,
} from './env.js';

const origins = z
  .string({ error: "is required: a comma list of allowed origins, or '*' for development" })
  .transform((value) =>
    value
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
  )
  .refine(
    (list) => list.length > 0 && list.every((o) => o === '*' || /^https?:\/\/[^/\s]+$/.test(o)),
    {
      error: "must be '*' or a comma list of origins like https://chat.example.com",
    },
  );

const gatewayShape = {
  PORT: int(0, 65535, 8080),
  HOST: z.string().default('0.0.0.0'),
  REDIS_URL: redisUrl,
  SESSION_SECRET: z
    .string({
      error: 'is required: a shared secret of at least 32 characters, the same on every gateway',
    })
    .min(32, { error: 'must be at least 32 characters long' }),
  ALLOWED_ORIGINS: origins,
  GATEWAY_ID: instanceId('gw'),
  MAX_SOCKETS_PER_SESSION: int(1, 1000, 8),
  LOG_LEVEL: logLevel,
  KEY_PREFIX: keyPrefix,
  HEARTBEAT_MS: int(200, 450_000, 30_000), // twice this stays under uWS's idleTimeout (960 s)
  MAX_MESSAGE_BYTES: int(16, 1_048_576, 16_384),
  MAX_FRAME_BYTES: int(1024, 67_108_864, 1_048_576),
  MAX_BACKPRESSURE_BYTES: int(16_384, 1_073_741_824, 4_194_304),
  DRAIN_TIMEOUT_MS: int(0, 600_000, 10_000),
  CONNECTIONS_PER_IP: int(0, 1_000_000, 1_000),
  CONNECT_BURST_PER_IP: int(0, 1_000_000, 200),
  CONNECT_RATE_PER_IP_PER_MINUTE: int(1, 6_000_000, 600),
  TRUST_PROXY: bool(false),
  CHAT_BURST: int(0, 10_000, 10),
  CHAT_RATE_PER_MINUTE: int(1, 600_000, 30),
  ...sessionRetention,
};

/** Every variable this service reads: the configuration table documents exactly these. */
export const GATEWAY_VARIABLES = Object.keys(gatewayShape);

export type GatewayConfig = ReturnType<typeof loadGatewayConfig>;

export function loadGatewayConfig(env: Env = process.env) {
  const config = parseEnv(gatewayShape, env);
  // The hard cap must sit above the protocol's limits: frames a little too large get
  // `too_large`, far too large ones close 1009, and only past the cap does uWS drop the socket.
  const closeAt = closeLimit({ maxMessageBytes: config.MAX_MESSAGE_BYTES });
  if (config.MAX_FRAME_BYTES <= closeAt) {
    throw ConfigError.about(
      'MAX_FRAME_BYTES',
      `must be more than 12 x MAX_MESSAGE_BYTES + 2048 (${closeAt}), where frames close with 1009`,
    );
  }
  return config;
}
