import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWebPage } from '../../services/gateway/src/http-routes.js';
import { TestCluster } from '../support/test-cluster.js';

/** How a gateway serves the built web page (services/web/dist). */
describe('the web page on a gateway', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 1, workers: 0 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('serves index.html at / and its assets with immutable caching', async () => {
    const base = cluster.gateway(0).url;
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-store');
    const html = await index.text();
    expect(html).toContain('<div id="root">');
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] ?? '');
    expect(assets.some((path) => path.endsWith('.js'))).toBe(true);
    for (const path of assets) {
      const res = await fetch(`${base}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(res.headers.get('content-type')).toMatch(
        path.endsWith('.css') ? /^text\/css/ : /^text\/javascript/,
      );
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(100);
    }
  });

  it('serves nothing else under /assets: unknown names and path tricks are 404', async () => {
    const base = cluster.gateway(0).url;
    for (const path of [
      '/assets/nope.js',
      '/assets/../package.json',
      '/assets/%2e%2e/%2e%2e/package.json',
      '/assets/..%2f..%2fpackage.json',
      '/assets/',
    ]) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(404);
      await res.arrayBuffer();
    }
  });

  it('reads a build from disk, and reports a missing one as null', () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-web-'));
    try {
      expect(loadWebPage(dir)).toBeNull();
      mkdirSync(join(dir, 'assets', 'fonts'), { recursive: true });
      writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
      writeFileSync(join(dir, 'assets', 'app-1.js'), 'console.log(1)');
      writeFileSync(join(dir, 'assets', 'fonts', 'f.woff2'), Buffer.from([1, 2, 3]));
      writeFileSync(join(dir, 'assets', 'odd.xyz'), 'x');
      const page = loadWebPage(dir);
      expect(page?.indexHtml).toContain('<title>t</title>');
      expect(
        Object.fromEntries([...(page?.assets ?? [])].map(([k, v]) => [k, v.contentType])),
      ).toEqual({
        '/assets/app-1.js': 'text/javascript; charset=utf-8',
        '/assets/fonts/f.woff2': 'font/woff2',
        '/assets/odd.xyz': 'application/octet-stream',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
