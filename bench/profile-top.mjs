#!/usr/bin/env node
// Top functions by self time in V8 .cpuprofile files (from `node bench/run.mjs --profile dir`).
//
//   node bench/profile-top.mjs <dir or files…> [--top 20]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { ROOT } from './lib.mjs';

const args = process.argv.slice(2);
const topIndex = args.indexOf('--top');
const top = topIndex >= 0 ? Number(args.splice(topIndex, 2)[1]) : 20;
const files = args.flatMap((path) =>
  statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((name) => name.endsWith('.cpuprofile'))
        .map((name) => join(path, name))
    : [path],
);
if (files.length === 0) {
  console.error('usage: node bench/profile-top.mjs <dir or .cpuprofile files> [--top N]');
  process.exit(1);
}

/** Which service a profile is of: the dist folder its frames come from most. */
function serviceOf(nodes) {
  const counts = {};
  for (const node of nodes) {
    const match = /services\/(\w+)\/dist/.exec(node.callFrame.url);
    if (match) counts[match[1]] = (counts[match[1]] ?? 0) + node.hitCount;
  }
  return Object.entries(counts).sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'unknown';
}

const place = (frame) => {
  if (!frame.url) return '';
  const path = frame.url.startsWith('file://')
    ? relative(ROOT, new URL(frame.url).pathname)
    : frame.url;
  return `${path.replace(/^.*node_modules\/\.pnpm\/[^/]+\/node_modules\//, '')}:${frame.lineNumber + 1}`;
};

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const frame = byId.get(id).callFrame;
    const key = `${frame.functionName || '(anonymous)'}  ${place(frame)}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const idle = [...self].filter(([key]) => /^\((idle|program|garbage collector)\)/.test(key));
  console.log(
    `\n${serviceOf(profile.nodes)}  ${basename(file)}  ${(total / 1e6).toFixed(1)} s sampled`,
  );
  for (const [key, us] of idle)
    console.log(`  ${((us / total) * 100).toFixed(1).padStart(5)} %  ${key}`);
  const busy = [...self].filter(([key]) => !/^\((idle|program|garbage collector)\)/.test(key));
  busy.sort((a, b) => b[1] - a[1]);
  for (const [key, us] of busy.slice(0, top)) {
    console.log(`  ${((us / total) * 100).toFixed(1).padStart(5)} %  ${key}`);
  }
}
