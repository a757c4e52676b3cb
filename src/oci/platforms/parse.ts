// Normalising, parsing and formatting platforms as containerd does: specifiers
// `os[(osversion[+feature…])]/arch[/variant]` and the normalisation table.
import { posix } from 'node:path';
import { invalidArgument } from '../../../store/errors.js';
import { defaultPlatform, knownArch, knownOS } from './host.js';
import { toPlatform, type Platform, type PlatformLike } from './types.js';

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

