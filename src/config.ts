// The server's configuration: embedded defaults, overridden by a TOML file (`--config`), then
// by command-line flags. Unknown keys are errors, so a typo never passes silently.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { invalidArgument } from '../store/errors.js';
import { pluginSettings, proxyPluginSettings, settingProblem, topDefault, topSettings, topTables, type Setting } from './settings.js';

export interface Config {
  /** Persistent data: each plugin gets `<root>/<type>.<id>`. */
  root: string;
  /** Data that does not outlive a reboot (mounts, sockets). */
  state: string;
  /** `HOST:PORT` or `unix:///path`. */
  address: string;
  /** Plugins whose failure stops start-up. */
  requiredPlugins: string[];
  /** `[plugins."<type>.<id>"]` tables, handed to each plugin's init. */
  plugins: Record<string, Record<string, unknown>>;
  /** `<type>.<id>` of built-in plugins not to load (containerd's `disabled_plugins`). */
  disabledPlugins: string[];
  /** `[proxy_plugins.<name>]`: components served by another process over a unix socket. */
  proxyPlugins: Record<string, ProxyPluginConfig>;
  logLevel: string;
  /** `auth_token_file`: the management API's bearer token is this file's content (trimmed). */
  authTokenFile?: string;
  /** `insecure_listen`: a TCP address other than loopback is allowed without a token. */
  insecureListen?: boolean;
  /** `socket_group`: the group (name or gid) of a unix socket the API listens on. */
  socketGroup?: string;
}

export interface ProxyPluginConfig {
  /** Only `snapshot` so far. */
  type: 'snapshot';
  /** The serving process's socket: `/run/x.sock` or `unix:///run/x.sock`. */
  address: string;
  /** The snapshotter's name on the remote server (default: this plugin's name). */
  snapshotter?: string;
  /** The namespace the remote keeps this server's snapshots in (default `berth-proxy`). */
  namespace?: string;
  /** A file holding the remote server's API token (its `auth_token_file`). */
  auth_token_file?: string;
}

export const defaultAddress = topDefault<string>('address');

const isRoot = () => process.getuid?.() === 0;

export function defaultRoot(): string {
  if (isRoot()) return '/var/lib/berth';
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'berth');
}

export function defaultState(root: string): string {
  if (isRoot()) return '/run/berth';
  return process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'berth') : join(root, 'state');
}

/** Reads the configuration file (if any) and applies `overrides` on top of it. */
export async function loadConfig(file: string | undefined, overrides: Partial<Config> = {}): Promise<Config> {
  let table: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw invalidArgument(`cannot read config ${file}: ${(err as Error).message}`, err);
    }
    try {
      table = parse(text) as Record<string, unknown>;
    } catch (err) {
      throw invalidArgument(`config ${file}: ${(err as Error).message}`, err);
    }
    checkConfigTable(table, file);
  }
  const str = (key: string): string | undefined => {
    const v = table[key];
    if (v !== undefined && typeof v !== 'string') throw invalidArgument(`config ${file}: ${key} must be a string`);
    return v;
  };
  const root = overrides.root ?? str('root') ?? defaultRoot();
  return {
    root,
    state: overrides.state ?? str('state') ?? defaultState(root),
    address: overrides.address ?? str('address') ?? defaultAddress,
    requiredPlugins: overrides.requiredPlugins ??
      (table.required_plugins as string[] | undefined) ?? topDefault<string[]>('required_plugins'),
    plugins: overrides.plugins ?? (table.plugins as Config['plugins'] | undefined) ?? {},
    disabledPlugins: overrides.disabledPlugins ?? stringList(table.disabled_plugins, 'disabled_plugins', file) ?? [],
    proxyPlugins: overrides.proxyPlugins ?? proxyPlugins(table.proxy_plugins, file),
    logLevel: overrides.logLevel ?? str('log_level') ?? topDefault<string>('log_level'),
    authTokenFile: overrides.authTokenFile ?? str('auth_token_file'),
    insecureListen: overrides.insecureListen ?? (table.insecure_listen as boolean | undefined) ?? topDefault<boolean>('insecure_listen'),
    socketGroup: overrides.socketGroup ?? str('socket_group'),
  };
}

/**
 * A bearer token from a file (`auth_token_file`, the CLI's `--token-file`): its content without
 * surrounding white space, which must be one word of printable ASCII (it travels in a header).
 * `what` names the setting in the error.
 */
export async function readTokenFile(file: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw invalidArgument(`${what} ${file}: cannot read it: ${(err as Error).message}`, err);
  }
  const token = text.trim();
  if (!token) throw invalidArgument(`${what} ${file} is empty`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw invalidArgument(`${what} ${file}: the token must be one word of printable ASCII characters`);
  return token;
}

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value of one key against its setting (src/settings.ts); the error names the key and the value. */
function checkSetting(s: Setting, value: unknown, where: string): void {
  const problem = settingProblem(s, value);
  if (problem !== undefined) throw invalidArgument(`${where}: ${problem}`);
  if (s.kind === 'address') {
    try {
      parseAddress(value as string);
    } catch (err) {
      throw invalidArgument(`${where}: ${(err as Error).message}`);
    }
  }
}

/**
 * Checks a configuration file's table against the table of settings (src/settings.ts): every key
 * known, every value of its kind. What a plugin checks beyond that (a path that must exist, a
 * snapshotter that must be loaded) it checks when it starts.
 */
export function checkConfigTable(table: Record<string, unknown>, file: string | undefined): void {
  const where = `config ${file}`;
  for (const [key, value] of Object.entries(table)) {
    if ((topTables as readonly string[]).includes(key)) {
      if (!isTable(value)) throw invalidArgument(`${where}: ${key} must be a table`);
      continue;
    }
    const s = topSettings.find((t) => t.key === key);
    if (!s) {
      const known = [...topSettings.map((t) => t.key), ...topTables].join(', ');
      throw invalidArgument(`${where}: unknown key ${JSON.stringify(key)} (known: ${known})`);
    }
    checkSetting(s, value, `${where}: ${key}`);
  }
  for (const [plugin, t] of Object.entries((table.plugins ?? {}) as Record<string, unknown>)) {
    const at = `${where}: plugins."${plugin}"`;
    if (!isTable(t)) throw invalidArgument(`${at} must be a table`);
    const settings = pluginSettings.find((p) => p.plugin === plugin)?.settings ?? [];
    for (const [key, value] of Object.entries(t)) {
      const s = settings.find((x) => x.key === key);
      if (!s) {
        const known = settings.length ? `known: ${settings.map((x) => x.key).join(', ')}` : 'it has no settings';
        throw invalidArgument(`${at}: unknown key ${JSON.stringify(key)} (${known})`);
      }
      checkSetting(s, value, `${at}.${key}`);
    }
  }
}

function stringList(v: unknown, key: string, file: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw invalidArgument(`config ${file}: ${key} must be a list of strings`);
  return v as string[];
}

function proxyPlugins(v: unknown, file: string | undefined): Record<string, ProxyPluginConfig> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null) throw invalidArgument(`config ${file}: proxy_plugins must be a table`);
  const out: Record<string, ProxyPluginConfig> = {};
  for (const [name, raw] of Object.entries(v as Record<string, Record<string, unknown>>)) {
    const where = `config ${file}: proxy_plugins.${name}`;
    for (const k of Object.keys(raw)) {
      if (!proxyPluginSettings.some((s) => s.key === k)) throw invalidArgument(`${where}: unknown key ${JSON.stringify(k)}`);
    }
    if (raw.type !== 'snapshot') throw invalidArgument(`${where}: type must be "snapshot" (the only kind of proxy plugin)`);
    if (typeof raw.address !== 'string' || !raw.address) throw invalidArgument(`${where}: address (a unix socket path) is required`);
    for (const k of ['snapshotter', 'namespace', 'auth_token_file'] as const) {
      if (raw[k] !== undefined && typeof raw[k] !== 'string') throw invalidArgument(`${where}: ${k} must be a string`);
    }
    out[name] = raw as unknown as ProxyPluginConfig;
  }
  return out;
}

export type ListenAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** Parses `HOST:PORT`, `[v6]:PORT` or `unix:///path`. */
export function parseAddress(address: string): ListenAddress {
  if (address.startsWith('unix://')) {
    const path = address.slice('unix://'.length);
    if (!path.startsWith('/')) throw invalidArgument(`address ${address}: a unix socket path must be absolute`);
    return { kind: 'unix', path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw invalidArgument(`address ${JSON.stringify(address)}: expected HOST:PORT, [IPv6]:PORT or unix:///path`);
  }
  return { kind: 'tcp', host: m[1] ?? m[2], port };
}
