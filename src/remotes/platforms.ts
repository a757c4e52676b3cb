// Platforms as containerd reads, normalises, formats and prefers them (github.com/containerd/
// platforms, reference §7.9): specifiers `os[(osversion[+feature…])]/arch[/variant]`, the
// normalisation table, `Only(p)` with its fallback vector (amd64/v3 → v2 → v1 → 386, arm64 →
// arm/v8 … arm/v5, …) and the choice of manifests from an index (LimitManifests + FilterPlatforms).
import { readFileSync } from 'node:fs';
import { endianness, machine } from 'node:os';
import { posix } from 'node:path';
import { invalidArgument, notFound } from '../errors.js';

/** An OCI platform in TS spelling (the JSON keys `os.version` and `os.features` are osVersion/osFeatures). */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  osVersion?: string;
  osFeatures?: string[];
}

/** A platform as image indexes and manifests write it (OCI image-spec JSON). */
export interface OciPlatform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

/** Either spelling; the functions here read both. */
export type PlatformLike = Platform | OciPlatform;

export interface PlatformMatcher {
  /** True when `p` is acceptable. */
  match(p: PlatformLike): boolean;
  /** True when `a` is preferred to `b` (a sort's less-than). */
  less(a: PlatformLike, b: PlatformLike): boolean;
}

/** Reads either spelling into a Platform (no normalisation). */
export function toPlatform(p: PlatformLike): Platform {
  const oci = p as OciPlatform;
  const ts = p as Platform;
  const out: Platform = { os: p.os ?? '', architecture: p.architecture ?? '' };
  if (p.variant) out.variant = p.variant;
  const osVersion = ts.osVersion ?? oci['os.version'];
  if (osVersion) out.osVersion = osVersion;
  const osFeatures = ts.osFeatures ?? oci['os.features'];
  if (osFeatures && osFeatures.length > 0) out.osFeatures = [...osFeatures];
  return out;
}

/** The OCI JSON form of a platform. */
export function toOciPlatform(p: PlatformLike): OciPlatform {
  const q = toPlatform(p);
  const out: OciPlatform = { architecture: q.architecture, os: q.os };
  if (q.osVersion) out['os.version'] = q.osVersion;
  if (q.osFeatures) out['os.features'] = q.osFeatures;
  if (q.variant) out.variant = q.variant;
  return out;
}

// --- the host --------------------------------------------------------------------------------

const knownOS = new Set([
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl',
  'netbsd', 'openbsd', 'plan9', 'solaris', 'windows', 'zos',
]);

const knownArch = new Set([
  '386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'ppc64', 'ppc64le', 'loong64', 'mips',
  'mipsle', 'mips64', 'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'riscv', 'riscv64', 's390', 's390x',
  'sparc', 'sparc64', 'wasm',
]);

/** Node's process.platform → Go's GOOS. */
function osFromNode(platform: string): string {
  switch (platform) {
    case 'win32':
      return 'windows';
    case 'sunos':
      return 'solaris';
    default:
      return platform;
  }
}

/** Node's process.arch → Go's GOARCH. */
function archFromNode(arch: string, littleEndian: boolean): string {
  switch (arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    case 'ppc64':
      return littleEndian ? 'ppc64le' : 'ppc64';
    case 'mipsel':
      return 'mipsle';
    case 'mips64el':
      return 'mips64le';
    default:
      return arch; // arm, arm64, s390x, riscv64, loong64, …
  }
}

/** The first `key: value` line of /proc/cpuinfo whose key is `key` (case-insensitive), as getCPUInfo. */
function cpuinfoField(cpuinfo: string, key: string): string | undefined {
  for (const line of cpuinfo.split('\n')) {
    const fields = line.split(':');
    if (fields.length > 1 && fields[0].trim().toLowerCase() === key.toLowerCase()) return fields[1].trim();
  }
  return undefined;
}

export interface CpuFacts {
  /** The text of /proc/cpuinfo, when readable. */
  cpuinfo?: string;
  /** uname's machine (os.machine()), e.g. `aarch64`, `armv7l`. */
  machine?: string;
  /** process.config.variables.arm_version, the ARM version Node was built for. */
  armVersion?: string | number;
}

/**
 * The ARM variant of the CPU (containerd's getArmCPUVariant): `CPU architecture` from
 * /proc/cpuinfo (7 on an ARMv6 Raspberry Pi whose model is `ARMv6-compatible` means v6), else
 * the variant in uname's machine; failing both (or an unknown value) the ARM version Node was
 * built for on 32-bit ARM, v8 on arm64. Empty for other architectures.
 */
export function armVariant(arch: string, facts: CpuFacts): string {
  if (arch !== 'arm' && arch !== 'arm64') return '';
  let raw = facts.cpuinfo !== undefined ? cpuinfoField(facts.cpuinfo, 'Cpu architecture') : undefined;
  if (raw === undefined && facts.machine) {
    const m = facts.machine.toLowerCase();
    if (m === 'aarch64') raw = '8';
    else if (m.startsWith('armv') && m.length >= 5) raw = m.slice(4, 5);
  }
  if (raw !== undefined && arch === 'arm' && raw === '7' && facts.cpuinfo !== undefined) {
    const model = cpuinfoField(facts.cpuinfo, 'model name');
    if (model?.toLowerCase().startsWith('armv6-compatible')) raw = '6';
  }
  switch (raw?.toLowerCase()) {
    case '8':
    case 'aarch64':
      return 'v8';
    case '7':
    case '7m':
    case '?(12)':
    case '?(13)':
    case '?(14)':
    case '?(15)':
    case '?(16)':
    case '?(17)':
      return 'v7';
    case '6':
    case '6tej':
      return 'v6';
    case '5':
    case '5t':
    case '5te':
    case '5tej':
      return 'v5';
    case '4':
    case '4t':
      return 'v4';
    case '3':
      return 'v3';
  }
  if (arch === 'arm64') return 'v8';
  const built = String(facts.armVersion ?? '');
  return /^[0-9]+$/.test(built) ? `v${built}` : '';
}

/**
 * The platform of a Node host (containerd's DefaultSpec): GOOS and GOARCH spelled from Node's
 * names (win32 → windows, x64 → amd64, ia32 → 386, …) and, on ARM, the CPU variant.
 */
export function platformOfHost(
  nodePlatform: string,
  nodeArch: string,
  facts: CpuFacts & { littleEndian?: boolean } = {},
): Platform {
  const architecture = archFromNode(nodeArch, facts.littleEndian ?? true);
  const p: Platform = { os: osFromNode(nodePlatform), architecture };
  const variant = armVariant(architecture, facts);
  if (variant) p.variant = variant;
  return p;
}

let hostPlatform: Platform | undefined;

/** This host's platform (containerd's platforms.DefaultSpec()), e.g. linux/amd64 or linux/arm64/v8. */
export function defaultPlatform(): Platform {
  if (!hostPlatform) {
    const facts: CpuFacts & { littleEndian?: boolean } = { littleEndian: endianness() === 'LE' };
    if (process.arch === 'arm' || process.arch === 'arm64') {
      if (process.platform === 'linux') {
        try {
          facts.cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
        } catch {
          // as containerd: fall back to uname
        }
      }
      try {
        facts.machine = machine();
      } catch {
        // not on this Node
      }
      const variables = (process.config as { variables?: Record<string, unknown> }).variables;
      const armVersion = variables?.arm_version;
      if (typeof armVersion === 'string' || typeof armVersion === 'number') facts.armVersion = armVersion;
    }
    hostPlatform = platformOfHost(process.platform, process.arch, facts);
  }
  return { ...hostPlatform };
}

/**
 * The matcher a pull uses when no platform is asked for (containerd's platforms.Default()):
 * Only(host); on macOS the host, then linux on the same architecture.
 */
export function defaultMatcher(): PlatformMatcher {
  const host = defaultPlatform();
  if (host.os === 'darwin') return orderedMatcher(host, { os: 'linux', architecture: host.architecture });
  return onlyMatcher(host);
}

// --- normalisation ---------------------------------------------------------------------------

function normalizeOS(os: string): string {
  if (os === '') return defaultPlatform().os;
  const lower = os.toLowerCase();
  return lower === 'macos' ? 'darwin' : lower;
}

function normalizeArch(arch: string, variant: string): [string, string] {
  arch = arch.toLowerCase();
  variant = variant.toLowerCase();
  switch (arch) {
    case 'i386':
      return ['386', ''];
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return ['amd64', variant === 'v1' ? '' : variant];
    case 'aarch64':
    case 'arm64':
      switch (variant) {
        case '8':
        case 'v8':
        case 'v8.0':
          return ['arm64', ''];
        case '9':
        case '9.0':
        case 'v9.0':
          return ['arm64', 'v9'];
      }
      return ['arm64', variant];
    case 'armhf':
      return ['arm', 'v7'];
    case 'armel':
      return ['arm', 'v6'];
    case 'arm':
      switch (variant) {
        case '':
        case '7':
          return ['arm', 'v7'];
        case '5':
        case '6':
        case '8':
          return ['arm', `v${variant}`];
      }
      return ['arm', variant];
  }
  return [arch, variant];
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The canonical form used for matching (platforms.Normalize): OS lower-cased (`macos` →
 * `darwin`, empty → the host's), architecture and variant from the table (`x86_64` → amd64,
 * `aarch64` → arm64, `armhf` → arm/v7, `arm` → arm/v7, `arm64/v8` → arm64, …), OS features
 * sorted and de-duplicated.
 */
export function normalizePlatform(p: PlatformLike): Platform {
  const q = toPlatform(p);
  const [architecture, variant] = normalizeArch(q.architecture, q.variant ?? '');
  const out: Platform = { os: normalizeOS(q.os), architecture };
  if (variant) out.variant = variant;
  if (q.osVersion) out.osVersion = q.osVersion;
  if (q.osFeatures) {
    const sorted = [...q.osFeatures].sort(compareStrings);
    out.osFeatures = sorted.filter((f, i) => i === 0 || f !== sorted[i - 1]);
  }
  return out;
}

// --- parsing and formatting ------------------------------------------------------------------

const specifierRe = /^[A-Za-z0-9_.-]+$/;
const osRe = /^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$/;

/** Go's url.PathUnescape: `%XX` decoded, anything else kept; a bad escape is an error. */
function pathUnescape(s: string): string {
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw new Error(`invalid URL escape ${JSON.stringify(s.slice(i, i + 3))}`);
      }
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function decodeOSOption(specifier: string, what: string, v: string): string {
  try {
    return pathUnescape(v);
  } catch (err) {
    throw invalidArgument(`${JSON.stringify(specifier)} has an invalid ${what} ${JSON.stringify(v)}: ${(err as Error).message}`);
  }
}

function encodeOSOption(v: string): string {
  return v.replace(/[%+()/]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/**
 * platforms.Parse: `<os>[(<osversion>[+<feature>…])]`, `<arch>` or
 * `<os>[(…)]/<arch>[/<variant>]`. A lone known OS takes the host's architecture (and ARM
 * variant, unless v7); a lone known architecture takes the host's OS. `os/arm` leaves the
 * implied v7 out; `os/arm64/` spelled with three parts and no variant gets v8.
 */
export function parsePlatform(specifier: string): Platform {
  const q = JSON.stringify(specifier);
  if (specifier.includes('*')) throw invalidArgument(`${q}: wildcards not yet supported`);

  // At most 4 parts, as strings.SplitN(specifier, "/", 4).
  const parts: string[] = [];
  let rest = specifier;
  while (parts.length < 3) {
    const i = rest.indexOf('/');
    if (i < 0) break;
    parts.push(rest.slice(0, i));
    rest = rest.slice(i + 1);
  }
  parts.push(rest);

  const osOptions = osRe.exec(parts[0]);
  if (!osOptions) {
    throw invalidArgument(
      `${JSON.stringify(parts[0])} is an invalid OS component of ${q}: OSAndVersion specifier component must match ${JSON.stringify(osRe.source)}`,
    );
  }
  for (const part of parts.slice(1)) {
    if (!specifierRe.test(part)) {
      throw invalidArgument(
        `${JSON.stringify(part)} is an invalid component of ${q}: platform specifier component must match ${JSON.stringify(specifierRe.source)}`,
      );
    }
  }

  const p: Platform = { os: normalizeOS(osOptions[1]), architecture: '' };
  const osVersion = decodeOSOption(specifier, 'OS version', osOptions[2] ?? '');
  if (osVersion) p.osVersion = osVersion;
  if (osOptions[3]) {
    p.osFeatures = osOptions[3]
      .slice(1)
      .split('+')
      .map((f) => decodeOSOption(specifier, 'OS feature', f));
  }

  const withArch = (arch: string, variant: string): Platform => {
    const out: Platform = { ...p, architecture: arch };
    if (variant) out.variant = variant;
    else delete out.variant;
    return out;
  };

  switch (parts.length) {
    case 1: {
      if (knownOS.has(p.os)) {
        const host = defaultPlatform();
        const cpu = host.variant ?? '';
        return withArch(host.architecture, host.architecture === 'arm' && cpu !== 'v7' ? cpu : '');
      }
      let [arch, variant] = normalizeArch(parts[0], '');
      if (arch === 'arm' && variant === 'v7') variant = '';
      if (knownArch.has(arch)) return { ...withArch(arch, variant), os: defaultPlatform().os };
      throw invalidArgument(`${q}: unknown operating system or architecture`);
    }
    case 2: {
      let [arch, variant] = normalizeArch(parts[1], '');
      if (arch === 'arm' && variant === 'v7') variant = '';
      return withArch(arch, variant);
    }
    case 3: {
      let [arch, variant] = normalizeArch(parts[1], parts[2]);
      if (arch === 'arm64' && variant === '') variant = 'v8';
      return withArch(arch, variant);
    }
  }
  throw invalidArgument(`${q}: cannot parse platform specifier`);
}

/** platforms.Format: `os/arch[/variant]`, or `unknown` without an OS. */
export function formatPlatform(p: PlatformLike): string {
  const q = toPlatform(p);
  if (q.os === '') return 'unknown';
  return posix.join(q.os, q.architecture, q.variant ?? '');
}

/**
 * platforms.FormatAll: as formatPlatform, with `(osversion+feature…)` after the OS when there
 * are any (features sorted, empty ones left out, `% + ( ) /` percent-encoded).
 */
export function formatPlatformAll(p: PlatformLike): string {
  const q = toPlatform(p);
  if (q.os === '') return 'unknown';
  let options = encodeOSOption(q.osVersion ?? '');
  for (const f of [...(q.osFeatures ?? [])].sort(compareStrings)) {
    if (f !== '') options += `+${encodeOSOption(f)}`;
  }
  const os = options !== '' ? `${q.os}(${options})` : q.os;
  return posix.join(os, q.architecture, q.variant ?? '');
}

// --- matching --------------------------------------------------------------------------------

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

// --- choosing manifests from an index --------------------------------------------------------

export interface SelectOptions {
  /**
   * Throw not_found when no child is left. containerd's LimitManifests does so only with a
   * limit (a pull); with limit 0 (a fetch) an index with no match yields no children.
   * Default: `limit > 0`.
   */
  requireMatch?: boolean;
  /** The index's digest, named in the not_found message. */
  index?: string;
}

/**
 * The children of an index that a pull follows (containerd's FilterPlatforms + LimitManifests):
 * children with a platform that `matcher` refuses are dropped (those without one are kept),
 * the rest stable-sorted by preference with platform-less children last, and the first `limit`
 * kept (0 = all). None left → not_found `no match for platform in manifest`.
 */
export function selectManifests<T extends { platform?: PlatformLike }>(
  children: readonly T[],
  matcher: PlatformMatcher,
  limit: number,
  opts: SelectOptions = {},
): T[] {
  const kept = children.filter((c) => !c.platform || matcher.match(c.platform));
  // Array.prototype.sort is stable, as sort.SliceStable.
  kept.sort((a, b) => {
    if (!a.platform) return b.platform ? 1 : 0;
    if (!b.platform) return -1;
    if (matcher.less(a.platform, b.platform)) return -1;
    if (matcher.less(b.platform, a.platform)) return 1;
    return 0;
  });
  if (kept.length === 0 && (opts.requireMatch ?? limit > 0)) {
    throw notFound(`no match for platform in manifest${opts.index ? ` ${opts.index}` : ''}`);
  }
  return limit > 0 ? kept.slice(0, limit) : kept;
}
