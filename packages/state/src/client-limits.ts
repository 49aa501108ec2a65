import type { Redis } from 'ioredis';
import type { KeySchema } from './keys.js';
import { runScript } from './scripts.js';

export interface ClientLimitSettings {
  /** Connections an address may open at once, then one per `connectRefillMs`; 0 for no limit. */
  connectBurst: number;
  connectRefillMs: number;
  /** Connections an address may hold open across all gateways; 0 for no limit. */
  maxOpenPerAddress: number;
}

export type Admission =
  | { ok: true }
  | { ok: false; reason: 'rate'; retryAfterMs: number }
  | { ok: false; reason: 'concurrent' };

/**
 * Per-address connection limits that every replica shares. Open connections are counted per
 * gateway instance (id and start time), so a gateway that died, or restarted under the same id,
 * stops counting as soon as it is no longer among the live instances.
 */
export class ClientLimits {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
    private readonly settings: ClientLimitSettings,
  ) {}

  async admit(
    address: string,
    instance: string,
    liveInstances: readonly string[],
  ): Promise<Admission> {
    const k = this.keys.client(address);
    const reply = (await runScript(
      this.redis,
      'admitConnection',
      [k.connectBucket, k.openConnections],
      [
        Date.now(),
        this.settings.connectBurst,
        1 / this.settings.connectRefillMs,
        this.settings.maxOpenPerAddress,
        instance,
        ...new Set([instance, ...liveInstances]),
      ],
    )) as string[];
    if (reply[0] === 'rate') return { ok: false, reason: 'rate', retryAfterMs: Number(reply[1]) };
    if (reply[0] === 'concurrent') return { ok: false, reason: 'concurrent' };
    return { ok: true };
  }

  async closed(address: string, instance: string): Promise<void> {
    await this.redis.hincrby(this.keys.client(address).openConnections, instance, -1);
  }
}
