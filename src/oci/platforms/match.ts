// Which platforms match and which is preferred (containerd's Only(p) with its fallback vector:
// amd64/v3 → v2 → v1 → 386, arm64 → arm/v8 … arm/v5, …; Windows build compatibility).
import { defaultPlatform } from './host.js';
import { normalizePlatform } from './parse.js';
import { toPlatform, type Platform, type PlatformLike, type PlatformMatcher } from './types.js';

interface WindowsVersion {
  major: number;
  minor: number;
  build: number;
}

/** getWindowsOSVersion: `major.minor.build[.revision]`, zero when unreadable. */
function windowsVersion(v: string): WindowsVersion {
  const zero = { major: 0, minor: 0, build: 0 };
  const fields = v.split('.');
  if (fields.length < 3) return zero;
  const num = (s: string, max: number) => (/^[0-9]+$/.test(s) && Number(s) <= max ? Number(s) : undefined);
  const major = num(fields[0], 0xff);
  const minor = num(fields[1], 0xff);
  const build = num(fields[2], 0xffff);
  if (major === undefined || minor === undefined || build === undefined) return zero;
  return { major, minor, build };
}

const ltsc2022 = 20348;
const compatLTSCReleases = [ltsc2022];

/** checkWindowsHostAndContainerCompat: same major.minor; from WS2022 on, any build of a supported LTSC up to the host's. */
function windowsCompatible(host: WindowsVersion, ctr: WindowsVersion): boolean {
  if (host.major !== ctr.major || host.minor !== ctr.minor) return false;
  if (host.build < ltsc2022) return host.build === ctr.build;
  let supported = 0;
  for (let i = compatLTSCReleases.length - 1; i >= 0; i--) {
    if (host.build >= compatLTSCReleases[i]) {
      supported = compatLTSCReleases[i];
      break;
    }
  }
  return ctr.build >= supported && ctr.build <= host.build;
}

/**
 * platforms.NewMatcher: equal normalised OS, architecture and variant; the candidate's OS
 * features a subset of the wanted ones; for Windows, a compatible OS version.
 */
export function newMatcher(p: PlatformLike): { match(candidate: PlatformLike): boolean } {
  const raw = toPlatform(p);
  const want = normalizePlatform(raw);
  const wantFeatures = want.osFeatures ?? [];
  const winVersion = raw.os === 'windows' ? windowsVersion(raw.osVersion ?? '') : undefined;
  return {
    match(candidate: PlatformLike): boolean {
      const got = normalizePlatform(candidate);
      if (got.os !== want.os || got.architecture !== want.architecture || (got.variant ?? '') !== (want.variant ?? '')) {
        return false;
      }
      if (winVersion) {
        const empty = winVersion.major === 0 && winVersion.minor === 0 && winVersion.build === 0;
        const v = got.osVersion ?? '';
        if (!empty && v !== '' && !windowsCompatible(winVersion, windowsVersion(v))) return false;
      }
      // Both lists sorted: walk them together.
      const features = got.osFeatures ?? [];
      if (features.length === 0) return true;
      if (wantFeatures.length < features.length) return false;
      let j = 0;
      for (const f of features) {
        let found = false;
        for (; j < wantFeatures.length; j++) {
          if (f === wantFeatures[j]) {
            found = true;
            j++;
            break;
          }
          if (f < wantFeatures[j]) return false;
        }
        if (!found) return false;
      }
      return true;
    },
  };
}

function featureCount(p: PlatformLike): number {
  return toPlatform(p).osFeatures?.length ?? 0;
}

function withoutFeatures(p: PlatformLike): Platform {
  const q = toPlatform(p);
  delete q.osFeatures;
  return q;
}

/**
 * platforms.Ordered: matches any of `platforms`, preferring earlier ones; between two
 * candidates matching the same entry the one with more OS features wins, and when neither
 * matches they are compared again without their features.
 */
export function orderedMatcher(...platforms: PlatformLike[]): PlatformMatcher {
  const matchers = platforms.map((p) => newMatcher(p));
  const less = (a: PlatformLike, b: PlatformLike): boolean => {
    for (const m of matchers) {
      const am = m.match(a);
      const bm = m.match(b);
      if (am && !bm) return true;
      if (am || bm) {
        if (am && bm && featureCount(a) !== featureCount(b)) return featureCount(a) > featureCount(b);
        return false;
      }
    }
    if (featureCount(a) > 0 || featureCount(b) > 0) return less(withoutFeatures(a), withoutFeatures(b));
    return false;
  };
  return {
    match: (p) => matchers.some((m) => m.match(p)),
    less,
  };
}

function atoi(s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

function trimV(s: string): string {
  return s.startsWith('v') ? s.slice(1) : s;
}

/** platformVector: `p` and, in order, what it can also run (see onlyMatcher). */
export function platformVector(p: Platform): Platform[] {
  const vector: Platform[] = [p];
  const like = (architecture: string, variant?: string): Platform => {
    const q: Platform = { os: p.os, architecture };
    if (variant) q.variant = variant;
    if (p.osVersion) q.osVersion = p.osVersion;
    if (p.osFeatures) q.osFeatures = p.osFeatures;
    return q;
  };
  switch (p.architecture) {
    case 'amd64': {
      const version = atoi(trimV(p.variant ?? ''));
      if (version !== undefined && version > 1) {
        for (let v = version - 1; v >= 1; v--) vector.push(like('amd64', `v${v}`));
      }
      vector.push(like('386'));
      break;
    }
    case 'arm': {
      const version = atoi(trimV(p.variant ?? ''));
      if (version !== undefined && version > 5) {
        for (let v = version - 1; v >= 5; v--) vector.push(like('arm', `v${v}`));
      }
      break;
    }
    case 'arm64': {
      let variant = p.variant || 'v8';
      const dot = variant.indexOf('.');
      const majorPart = dot >= 0 ? variant.slice(0, dot) : variant;
      const minorPart = dot >= 0 ? variant.slice(dot + 1) : '';
      let major = atoi(trimV(majorPart));
      if (major !== undefined && major >= 8) {
        let minor = 0;
        if (variant.length === 4 && dot >= 0) minor = atoi(minorPart) ?? 0;
        if (major === 9) {
          for (let m = minor - 1; m >= 0; m--) vector.push(like('arm64', m === 0 ? 'v9' : `v9.${m}`));
          // v9.0 diverged from v8.5: v9.x runs v8.(x+5), up to v9.4/v8.9.
          minor = Math.min(minor + 5, 9);
          major = 8;
          vector.push(like('arm64', `v8.${minor}`));
        }
        for (let m = minor - 1; m >= 0; m--) vector.push(like('arm64', m === 0 ? `v${major}` : `v${major}.${m}`));
      }
      // Every arm64 runs 32-bit arm up to v8.
      if (variant.startsWith('v8.') || variant.startsWith('v9.')) variant = 'v8';
      vector.push(...platformVector(like('arm', variant)));
      break;
    }
  }
  return vector;
}

/**
 * platforms.Only(p): `p` (normalised) and what it can also run, in order of preference —
 * amd64/vN → amd64/v(N-1) … v1, then 386; arm/vN → down to arm/v5; arm64/v9.x → arm64/v9.(x-1)
 * … v9, v8.(x+5) … v8; arm64/v8.x → … v8; then arm/v8 … arm/v5. `less` puts the better match first.
 */
export function onlyMatcher(p: PlatformLike): PlatformMatcher {
  return orderedMatcher(...platformVector(normalizePlatform(p)));
}

/** platforms.OnlyStrict(p): `p` alone (normalised), no fallbacks. */
export function onlyStrictMatcher(p: PlatformLike): PlatformMatcher {
  return orderedMatcher(normalizePlatform(p));
}

/** platforms.All: every platform, no preference. */
export const allMatcher: PlatformMatcher = {
  match: () => true,
  less: () => false,
};


/**
 * The matcher a pull uses when no platform is asked for (containerd's platforms.Default()):
 * Only(host); on macOS the host, then linux on the same architecture.
 */
export function defaultMatcher(): PlatformMatcher {
  const host = defaultPlatform();
  if (host.os === 'darwin') return orderedMatcher(host, { os: 'linux', architecture: host.architecture });
  return onlyMatcher(host);
}
