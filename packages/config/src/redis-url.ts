/** Where the Redis of a deployment is: one server, a Redis Cluster, or a master behind Sentinels. */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | ({ kind: 'cluster'; nodes: RedisNode[] } & RedisAuth)
  | ({
      kind: 'sentinel';
      sentinels: RedisNode[];
      masterName: string;
      db: number;
      sentinelPassword?: string;
    } & RedisAuth);

export interface RedisNode {
  host: string;
  port: number;
}

export interface RedisAuth {
  tls: boolean;
  username?: string;
  password?: string;
}

const SINGLE = /^rediss?:\/\//;
const MULTI_HOST =
  /^(rediss?)\+(cluster|sentinel):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)(?:\/([^?#]*))?(?:\?([^#]*))?$/;
const EXAMPLES =
  'redis://host:6379, rediss://host:6380, redis+cluster://host1:7000,host2:7001 or redis+sentinel://host1:26379,host2:26379/mymaster';

/** Parses REDIS_URL; a string result is the reason it is not usable. */
export function parseRedisUrl(value: string): RedisTarget | string {
  if (SINGLE.test(value)) {
    try {
      const url = new URL(value);
      if (!url.hostname) return 'has no host';
      return { kind: 'single', url: value };
    } catch {
      return `is not a valid URL (e.g. ${EXAMPLES})`;
    }
  }
  const match = MULTI_HOST.exec(value);
  if (!match) return `must be one of ${EXAMPLES}`;
  const [, scheme, kind, user, password, hostList, path = '', query] = match;
  const defaultPort = kind === 'cluster' ? 6379 : 26379;
  const nodes: RedisNode[] = [];
  for (const entry of hostList!.split(',')) {
    const node = parseNode(entry.trim(), defaultPort);
    if (typeof node === 'string') return node;
    nodes.push(node);
  }
  const auth: RedisAuth = {
    tls: scheme === 'rediss',
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(password ? { password: decodeURIComponent(password) } : {}),
  };
  const params = new URLSearchParams(query ?? '');
  if (kind === 'cluster') {
    if (path !== '' || params.size > 0) return 'a redis+cluster:// URL takes no path or query';
    return { kind: 'cluster', nodes, ...auth };
  }
  const [masterName, db = '0', ...rest] = path.split('/');
  if (!masterName || rest.length > 0 || !/^\d{1,2}$/.test(db)) {
    return 'a redis+sentinel:// URL needs the master name as its path, optionally a db: /mymaster or /mymaster/2';
  }
  const unknown = [...params.keys()].filter((key) => key !== 'sentinelPassword');
  if (unknown.length > 0) return `unknown query parameter ${unknown[0]} (only sentinelPassword)`;
  const sentinelPassword = params.get('sentinelPassword');
  return {
    kind: 'sentinel',
    sentinels: nodes,
    masterName: decodeURIComponent(masterName),
    db: Number(db),
    ...(sentinelPassword ? { sentinelPassword } : {}),
    ...auth,
  };
}

function parseNode(entry: string, defaultPort: number): RedisNode | string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(entry);
  const port = Number(match?.[2] ?? defaultPort);
  if (!match || port < 1 || port > 65535) return `'${entry}' is not a host or host:port`;
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

/** The URL with its passwords replaced, for logs and error messages. */
export function redactRedisUrl(value: string): string {
  return value
    .replace(/(\/\/[^:@/]*:)[^@/]*@/, '$1***@')
    .replace(/(sentinelPassword=)[^&#]*/, '$1***');
}
