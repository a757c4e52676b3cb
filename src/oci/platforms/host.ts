// This host's platform (containerd's platforms.DefaultSpec): GOOS/GOARCH spelled from Node's names
// and, on ARM, the CPU variant from /proc/cpuinfo.
import { readFileSync } from 'node:fs';
import { endianness, machine } from 'node:os';
import type { Platform } from './types.js';

export const knownOS = new Set([
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl',
  'netbsd', 'openbsd', 'plan9', 'solaris', 'windows', 'zos',
]);

export const knownArch = new Set([
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
