import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const GATEWAY_MAIN = `${ROOT}services/gateway/dist/main.js`;
export const WORKER_MAIN = `${ROOT}services/worker/dist/main.js`;

export const TEST_SECRET = 'test-secret-that-is-at-least-32-characters';

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** A real gateway or worker process, started from the built dist/main.js. */
export class ServiceProcess {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private listeners: (() => void)[] = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    let partial = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 'raw', msg: line });
        }
      }
      for (const listener of this.listeners) listener();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr.push(chunk.toString());
      for (const listener of this.listeners) listener();
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  static spawn(name: string, main: string, env: Record<string, string>): ServiceProcess {
    const child = spawn(process.execPath, [main], {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ServiceProcess(name, child);
  }

  /** Resolves with the first log line that matches, failing if the process exits first. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.logs.find(match);
        if (found) {
          cleanup();
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `${this.name}: no matching log line in ${timeoutMs} ms; stderr: ${this.stderr.join('')}`,
          ),
        );
      }, timeoutMs);
      const onExit = ({ code }: { code: number | null }) => {
        cleanup();
        reject(
          new Error(
            `${this.name} exited (${code}) before logging that; stderr: ${this.stderr.join('')}`,
          ),
        );
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
      };
      this.listeners.push(check);
      void this.exited.then(onExit);
      check();
    });
  }

  /** Sends a signal and waits for the exit. */
  async kill(
    signal: NodeJS.Signals = 'SIGKILL',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

export class GatewayProcess extends ServiceProcess {
  port = 0;
  /** GATEWAY_ID, as the gateway announced it. */
  gatewayId = '';
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }
}

export class WorkerProcess extends ServiceProcess {
  metricsPort = 0;
}

export const randomPrefix = () => `t${randomBytes(5).toString('hex')}`;

export async function startGateway(env: Record<string, string>): Promise<GatewayProcess> {
  const proc = ServiceProcess.spawn('gateway', GATEWAY_MAIN, {
    PORT: '0',
    HOST: '127.0.0.1',
    SESSION_SECRET: TEST_SECRET,
    ALLOWED_ORIGINS: 'http://localhost:8080',
    ...env,
  });
  const gateway = Object.setPrototypeOf(proc, GatewayProcess.prototype) as GatewayProcess;
  const line = await gateway.waitForLog((l) => l.msg === 'gateway listening');
  gateway.port = Number(line.port);
  gateway.gatewayId = String(line.gatewayId);
  return gateway;
}

export async function startWorker(env: Record<string, string>): Promise<WorkerProcess> {
  const proc = ServiceProcess.spawn('worker', WORKER_MAIN, { METRICS_PORT: '0', ...env });
  const worker = Object.setPrototypeOf(proc, WorkerProcess.prototype) as WorkerProcess;
  const line = await worker.waitForLog((l) => l.msg === 'worker started');
  worker.metricsPort = Number(line.metricsPort);
  return worker;
}
