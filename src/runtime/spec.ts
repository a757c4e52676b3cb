// The OCI runtime spec of a container, built as containerd builds it: the default Linux spec
// (pkg/oci populateDefaultUnixSpec + WithDefaultUnixDevices), then the image's config
// (WithImageConfigArgs), then the caller's overrides (env, cwd, user, tty). Only the fields
// berth sets are typed; runc reads the JSON as written to the bundle's config.json.
import { failedPrecondition } from '../../store/errors.js';
import { resolveUser } from './user.js';

export interface User {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

export interface Capabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
}

export interface Rlimit {
  type: string;
  hard: number;
  soft: number;
}

export interface Process {
  terminal?: boolean;
  /** The terminal's initial window size (runc sets it before the process starts). */
  consoleSize?: { height: number; width: number };
  user: User;
  args?: string[];
  env?: string[];
  cwd: string;
  capabilities: Capabilities;
  rlimits: Rlimit[];
  noNewPrivileges: boolean;
}

export interface SpecMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface DeviceCgroup {
  allow: boolean;
  type?: 'a' | 'b' | 'c';
  major?: number;
  minor?: number;
  access: string;
}

export interface Linux {
  namespaces: Array<{ type: 'pid' | 'ipc' | 'uts' | 'mount' | 'network' | 'user' | 'cgroup'; path?: string }>;
  maskedPaths: string[];
  readonlyPaths: string[];
  cgroupsPath: string;
  resources: { devices: DeviceCgroup[] };
}

export interface Spec {
  ociVersion: string;
  root: { path: string; readonly?: boolean };
  process: Process;
  hostname?: string;
  mounts: SpecMount[];
  linux: Linux;
  annotations?: Record<string, string>;
}

/** The `config` section of an OCI image config: what shapes the process. */
export interface ImageProcessConfig {
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  User?: string;
}

/** containerd v1.7's vendored runtime-spec version; runc 1.1 does not check it. */
export const OCI_VERSION = '1.1.0';

/** The PATH an image without Env gets (containerd's defaultUnixEnv). */
export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const defaultCapabilities = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

// WithDefaultUnixDevices: after the deny-all rule, the character devices every container may use.
const defaultDeviceRules: Array<[major: number, minor: number | undefined]> = [
  [1, 3], // /dev/null
  [1, 8], // /dev/random
  [1, 7], // /dev/full
  [5, 0], // /dev/tty
  [1, 5], // /dev/zero
  [1, 9], // /dev/urandom
  [5, 1], // /dev/console
  [136, undefined], // /dev/pts/*
  [5, 2], // /dev/ptmx
];

/** The default Linux spec of container `id` in `namespace` (rootfs at `<bundle>/rootfs`). */
export function defaultSpec({ namespace, id }: { namespace: string; id: string }): Spec {
  if (!namespace) throw failedPrecondition(`default spec of container ${JSON.stringify(id)}: namespace is required`);
  return {
    ociVersion: OCI_VERSION,
    root: { path: 'rootfs', readonly: false },
    process: {
      user: { uid: 0, gid: 0 },
      cwd: '/',
      noNewPrivileges: true,
      capabilities: {
        bounding: [...defaultCapabilities],
        permitted: [...defaultCapabilities],
        effective: [...defaultCapabilities],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
    },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/sys/devices/virtual/powercap',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      cgroupsPath: `/${namespace}/${id}`,
      resources: {
        devices: [
          { allow: false, access: 'rwm' },
          ...defaultDeviceRules.map(([major, minor]): DeviceCgroup => ({
            allow: true,
            type: 'c',
            major,
            ...(minor === undefined ? {} : { minor }),
            access: 'rwm',
          })),
        ],
      },
    },
  };
}

/**
 * containerd's replaceOrAppendEnvValues: `defaults` in order; an override `K=V` replaces the
 * default named K in place or is appended; an override `K` (no `=`) removes the default K.
 */
export function mergeEnv(defaults: readonly string[], overrides: readonly string[]): string[] {
  const results = [...defaults];
  const indexOf = new Map<string, number>();
  defaults.forEach((e, i) => indexOf.set(keyOf(e), i));
  for (const value of overrides) {
    const i = indexOf.get(keyOf(value));
    // '' marks a removal, as in containerd (which also drops empty entries of `defaults`).
    if (i !== undefined) results[i] = value.includes('=') ? value : '';
    else if (value.includes('=')) results.push(value);
  }
  return results.filter((e) => e !== '');
}

const keyOf = (env: string): string => {
  const eq = env.indexOf('=');
  return eq < 0 ? env : env.slice(0, eq);
};

/**
 * WithImageConfigArgs: env = image Env (or the default PATH) merged with the env already in the
 * spec (so env set before wins); args = Entrypoint ++ (`args` when non-empty, else Cmd); cwd =
 * WorkingDir or `/`; the user from User (root when empty) resolved in `rootfs`.
 */
export async function withImageConfig(spec: Spec, config: ImageProcessConfig, rootfs: string, args?: string[]): Promise<Spec> {
  const defaults = config.Env && config.Env.length > 0 ? config.Env : [DEFAULT_PATH_ENV];
  const user = await resolveUser(rootfs, config.User ?? '');
  return {
    ...spec,
    process: {
      ...spec.process,
      env: mergeEnv(defaults, spec.process.env ?? []),
      args: [...(config.Entrypoint ?? []), ...(args && args.length > 0 ? args : (config.Cmd ?? []))],
      cwd: config.WorkingDir || '/',
      user,
    },
  };
}

/** WithEnv: the same merge, `env` overriding what the spec has. */
export function withEnv(spec: Spec, env: readonly string[]): Spec {
  if (env.length === 0) return spec;
  return { ...spec, process: { ...spec.process, env: mergeEnv(spec.process.env ?? [], env) } };
}

export function withCwd(spec: Spec, cwd: string): Spec {
  return { ...spec, process: { ...spec.process, cwd } };
}

export function withArgs(spec: Spec, args: string[]): Spec {
  return { ...spec, process: { ...spec.process, args: [...args] } };
}

/**
 * WithUser followed by WithAdditionalGIDs, as for an image's USER: `user` is any USER form
 * (`uid`, `name`, `uid:gid`, `name:group`, mixed), resolved in `rootfs`.
 */
export async function withUser(spec: Spec, user: string, rootfs: string): Promise<Spec> {
  return { ...spec, process: { ...spec.process, user: await resolveUser(rootfs, user) } };
}

/** WithTTY: a terminal, and TERM=xterm appended to the env. */
export function withTty(spec: Spec): Spec {
  return { ...spec, process: { ...spec.process, terminal: true, env: [...(spec.process.env ?? []), 'TERM=xterm'] } };
}
