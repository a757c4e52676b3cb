#!/usr/bin/env node
// Part of `npm run build`: records the commit the build is made from in dist/build-info.json,
// which `berth --version` and `GET /v1/version` report ("unknown" outside a git checkout).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || 'unknown';
} catch {
  // not a git checkout, or no git: "unknown"
}
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
mkdirSync(new URL('../dist/', import.meta.url), { recursive: true });
writeFileSync(new URL('../dist/build-info.json', import.meta.url), JSON.stringify({ version, commit }, null, 2) + '\n');
