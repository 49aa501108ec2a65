import { defineConfig } from 'vitest/config';

const unit = (name: string, root: string) => ({
  test: {
    name,
    root,
    include: ['src/**/*.test.ts'],
    globalSetup: ['../../test/support/global-setup.ts'],
  },
});

export default defineConfig({
  test: {
    projects: [
      unit('protocol', 'packages/protocol'),
      unit('client', 'packages/client'),
      unit('config', 'packages/config'),
      unit('state', 'packages/state'),
      unit('observability', 'packages/observability'),
      unit('gateway', 'services/gateway'),
      unit('worker', 'services/worker'),
      {
        test: {
          name: 'integration',
          root: '.',
          include: ['test/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Each file runs its own gateways and workers: keep the 2-core machine from thrashing.
          maxWorkers: 2,
          // After the unit projects (vitest needs its own group for a different maxWorkers).
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
