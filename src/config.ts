// The server's configuration: embedded defaults, overridden by a TOML file (`--config`), then
// by command-line flags. Unknown keys are errors, so a typo never passes silently.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { invalidArgument } from './errors.js';

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
  logLevel: string;
}

export const defaultAddress = '127.0.0.1:7420';

const isRoot = () => process.getuid?.() === 0;

export function defaultRoot(): string {
  if (isRoot()) return '/var/lib/berth';
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'berth');
}

export function defaultState(root: string): string {
  if (isRoot()) return '/run/berth';
  return process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'berth') : join(root, 'state');
}

const keys = new Set(['root', 'state', 'address', 'required_plugins', 'plugins', 'log_level']);

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
    for (const key of Object.keys(table)) {
      if (!keys.has(key)) throw invalidArgument(`config ${file}: unknown key ${JSON.stringify(key)}`);
    }
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
      (table.required_plugins as string[] | undefined) ?? ['io.berth.metadata.v1.level', 'io.berth.content.v1.content'],
    plugins: overrides.plugins ?? (table.plugins as Config['plugins'] | undefined) ?? {},
    logLevel: overrides.logLevel ?? str('log_level') ?? 'info',
  };
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
