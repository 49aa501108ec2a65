import { defineConfig } from 'vite';

/**
 * The demo chat page, built into dist/ and served by every gateway at `/` (and `/assets/*`).
 * No React plugin: Vite's own transform compiles TSX with the automatic JSX runtime.
 */
export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic' } },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, target: 'es2022' },
  server: {
    // `pnpm dev` in this folder: the page on Vite, /ws and /api on a local gateway.
    proxy: {
      '/ws': { target: 'ws://127.0.0.1:8080', ws: true },
      '/api': 'http://127.0.0.1:8080',
    },
  },
});
