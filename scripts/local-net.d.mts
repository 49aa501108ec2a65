export function freePort(port?: number): Promise<number>;
export function redisAnswers(url: string): Promise<boolean>;
export function freeClusterPort(): Promise<number>;
export function clusterNodeArgs(dir: string, port: number): string[];
export function joinRedisCluster(ports: number[], timeoutMs?: number): Promise<void>;
