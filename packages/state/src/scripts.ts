import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/**
 * A Lua file of `../lua`, named `<name>-<numKeys>.lua`; `emit.lua` and `take-token.lua` are the
 * shared prelude (local functions) of the scripts that ask for it.
 */
interface ScriptDef {
  command: string;
  numberOfKeys: number;
  lua: string;
}

const luaDir = new URL('../lua/', import.meta.url);
const prelude = ['emit.lua', 'take-token.lua']
  .map((file) => readFileSync(new URL(file, luaDir), 'utf8'))
  .join('\n');

function load(file: string, withPrelude: boolean): ScriptDef {
  const match = /^(.+)-(\d+)\.lua$/.exec(file);
  if (!match) throw new Error(`script file name must be <name>-<numKeys>.lua: ${file}`);
  const body = readFileSync(new URL(file, luaDir), 'utf8');
  const command = match[1]!.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
  return {
    command,
    numberOfKeys: Number(match[2]),
    lua: withPrelude ? `${prelude}\n${body}` : body,
  };
}

export const SCRIPTS = {
  acceptMessage: load('accept-message-9.lua', true),
  admitConnection: load('admit-connection-2.lua', true),
  joinSession: load('join-session-3.lua', false),
  acquireLease: load('acquire-lease-3.lua', false),
  renewLease: load('renew-lease-1.lua', false),
  releaseLease: load('release-lease-1.lua', false),
  appendEvents: load('append-events-3.lua', true),
  claimMessage: load('claim-message-6.lua', false),
  finishMessage: load('finish-message-8.lua', true),
} as const;

export type ScriptName = keyof typeof SCRIPTS;

const defined = new WeakSet<Redis>();

/** Runs a script by EVALSHA (ioredis falls back to EVAL once per connection). */
export async function runScript(
  redis: Redis,
  name: ScriptName,
  keys: string[],
  args: (string | number)[],
): Promise<unknown> {
  if (!defined.has(redis)) {
    for (const def of Object.values(SCRIPTS)) {
      redis.defineCommand(def.command, { numberOfKeys: def.numberOfKeys, lua: def.lua });
    }
    defined.add(redis);
  }
  const def = SCRIPTS[name];
  if (keys.length !== def.numberOfKeys) {
    throw new Error(`${name} takes ${def.numberOfKeys} keys, got ${keys.length}`);
  }
  const command = (
    redis as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>
  )[def.command]!;
  return command.call(redis, ...keys, ...args);
}
