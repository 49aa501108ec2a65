// The parent's handle on client processes (bench/client-worker.mjs).
import { fork } from 'node:child_process';
import { ROOT, track } from './lib.mjs';

export class ClientProcess {
  constructor(name) {
    this.name = name;
    this.child = track(
      fork(`${ROOT}bench/client-worker.mjs`, [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    this.pid = this.child.pid;
    this.calls = new Map();
    this.nextId = 0;
    this.child.on('message', ({ id, ok, result, error }) => {
      const call = this.calls.get(id);
      if (!call) return;
      this.calls.delete(id);
      if (ok) call.resolve(result);
      else call.reject(new Error(`${this.name}: ${error}`));
    });
    this.child.once('exit', (code, signal) => {
      for (const call of this.calls.values()) {
        call.reject(new Error(`${this.name} exited (${signal ?? code})`));
      }
      this.calls.clear();
    });
  }

  /** Runs a command of client-worker.mjs; rejects after timeoutMs. */
  call(cmd, args = {}, timeoutMs = 120_000) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new Error(`${this.name}: ${cmd} took over ${timeoutMs} ms`));
      }, timeoutMs);
      this.calls.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.child.send({ id, cmd, ...args });
    });
  }

  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

export const forkClients = (count, label = 'client') =>
  Array.from({ length: count }, (_, i) => new ClientProcess(`${label}${i + 1}`));

export const stopClients = (clients) => Promise.all(clients.map((c) => c.stop()));
