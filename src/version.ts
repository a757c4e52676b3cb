// What this berth is: the package's version and the commit it was built from. `npm run build`
// records the commit in dist/build-info.json (scripts/build-info.mjs); run from the sources (tsx),
// there is no build, so the checkout's HEAD is asked; "unknown" outside a git checkout.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  /** package.json's version. */
  version: string;
  /** The git commit the build was made from, or "unknown". */
  commit: string;
}

/** The folder holding berth's package.json, found from this file in src/ or dist/src/. */
export function packageRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'openapi.yaml'))) return dir;
    if (dirname(dir) === dir) throw new Error('berth package.json not found above ' + import.meta.url);
  }
}

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const root = packageRoot();
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  // dist/src/version.js → dist/build-info.json; src/version.ts → ./build-info.json, which no build writes.
  const recorded = fileURLToPath(new URL('../build-info.json', import.meta.url));
  let commit = 'unknown';
  if (existsSync(recorded)) {
    commit = (JSON.parse(readFileSync(recorded, 'utf8')) as { commit?: string }).commit || 'unknown';
  } else {
    try {
      commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      // not a git checkout, or no git
    }
  }
  cached = { version, commit };
  return cached;
}
