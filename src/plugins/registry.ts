// Components as plugins (containerd's plugin mechanism): each registers a type, an id, the
// types it requires and an init function. The server initialises them in dependency order and
// records each one's status and exports.

export type PluginStatus = 'ok' | 'skip' | 'error';

export interface PluginInfo {
  type: string;
  id: string;
  requires: string[];
  status: PluginStatus;
  /** Why it was skipped or what failed. */
  message?: string;
  exports: Record<string, string>;
}

export interface InitContext {
  /** `<root>/<type>.<id>`: this plugin's own folder (not yet created). */
  root: string;
  /** `<state>/<type>.<id>`: for things that do not outlive a reboot. */
  state: string;
  /** This plugin's table from the configuration file (empty when none). */
  config: Record<string, unknown>;
  logger: PluginLogger;
  /** Filled by init: shown by `GET /v1/plugins`. */
  exports: Record<string, string>;
  /** The instance of a plugin this one requires; throws when it is not `ok`. */
  get<T>(type: string, id?: string): T;
  /** All `ok` instances of a type, by id. */
  getAll<T>(type: string): Map<string, T>;
}

/** The server's logger (pino's shape). */
export interface PluginLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface Registration<T = unknown> {
  type: string;
  id: string;
  /** Types that must be initialised first; `*` means every other plugin. */
  requires?: string[];
  init(ctx: InitContext): Promise<T>;
  /** Called at shutdown, in reverse order of initialisation. */
  close?(instance: T): Promise<void>;
}

/**
 * Thrown by an init function to report `skip` with a reason rather than `error`. `off`: the
 * configuration leaves it off (as it does by default) — worth an info line, not a warning.
 */
export class SkipPlugin extends Error {
  constructor(
    reason: string,
    readonly off = false,
  ) {
    super(reason);
    this.name = 'SkipPlugin';
  }
}

export class PluginSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginSetupError';
  }
}

export const pluginKey = (type: string, id: string): string => `${type}.${id}`;

/**
 * Orders registrations so that each comes after every plugin of each type it requires.
 * A requirement no registration provides, or a cycle, is a start-up error that names it.
 */
export function initOrder(registrations: readonly Registration[]): Registration[] {
  const keys = new Set<string>();
  for (const r of registrations) {
    const key = pluginKey(r.type, r.id);
    if (keys.has(key)) throw new PluginSetupError(`plugin ${key} is registered twice`);
    keys.add(key);
  }
  const types = new Set(registrations.map((r) => r.type));
  const depsOf = (r: Registration): Registration[] => {
    const req = r.requires ?? [];
    if (req.includes('*')) return registrations.filter((o) => o !== r && !(o.requires ?? []).includes('*'));
    for (const t of req) {
      if (!types.has(t)) {
        throw new PluginSetupError(`plugin ${pluginKey(r.type, r.id)} requires ${t}, which no plugin provides`);
      }
    }
    // A plugin that requires `*` comes after all the others, so requiring its type never waits for it.
    return registrations.filter((o) => o !== r && req.includes(o.type) && !(o.requires ?? []).includes('*'));
  };

  const order: Registration[] = [];
  const state = new Map<Registration, 'visiting' | 'done'>();
  const visit = (r: Registration, path: Registration[]): void => {
    const s = state.get(r);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(r)), r].map((p) => pluginKey(p.type, p.id));
      throw new PluginSetupError(`plugin dependency cycle: ${cycle.join(' -> ')}`);
    }
    state.set(r, 'visiting');
    for (const dep of depsOf(r)) visit(dep, [...path, r]);
    state.set(r, 'done');
    order.push(r);
  };
  for (const r of registrations) visit(r, []);
  return order;
}

export interface PluginSetOptions {
  root: string;
  state: string;
  /** Tables from the configuration's `[plugins."<type>.<id>"]`. */
  config?: Record<string, Record<string, unknown>>;
  /** Plugins whose failure stops start-up (`<type>.<id>`). */
  required?: string[];
  logger: PluginLogger;
}

/** The initialised plugins of one server. */
export class PluginSet {
  private readonly infos: PluginInfo[] = [];
  private readonly instances = new Map<string, unknown>();
  private readonly closers: Array<() => Promise<void>> = [];

  private constructor() {}

  static async init(registrations: readonly Registration[], opts: PluginSetOptions): Promise<PluginSet> {
    const set = new PluginSet();
    const known = new Set(registrations.map((r) => pluginKey(r.type, r.id)));
    for (const key of [...Object.keys(opts.config ?? {}), ...(opts.required ?? [])]) {
      if (!known.has(key)) throw new PluginSetupError(`configuration names unknown plugin ${key}`);
    }
    try {
      for (const r of initOrder(registrations)) await set.initOne(r, opts);
    } catch (err) {
      await set.close();
      throw err;
    }
    return set;
  }

  private async initOne(r: Registration, opts: PluginSetOptions): Promise<void> {
    const key = pluginKey(r.type, r.id);
    const info: PluginInfo = { type: r.type, id: r.id, requires: r.requires ?? [], status: 'ok', exports: {} };
    const ctx: InitContext = {
      root: `${opts.root}/${key}`,
      state: `${opts.state}/${key}`,
      config: opts.config?.[key] ?? {},
      logger: opts.logger,
      exports: info.exports,
      get: <T>(type: string, id?: string): T => this.get<T>(type, id, key),
      getAll: <T>(type: string): Map<string, T> => this.getAll<T>(type),
    };
    let skippedOff = false;
    try {
      const instance = await r.init(ctx);
      this.instances.set(key, instance);
      if (r.close) this.closers.push(() => r.close!(instance));
    } catch (err) {
      info.status = err instanceof SkipPlugin ? 'skip' : 'error';
      skippedOff = err instanceof SkipPlugin && err.off;
      info.message = (err as Error).message;
    }
    this.infos.push(info);
    if (info.status !== 'ok') {
      const fields = { plugin: key, status: info.status, reason: info.message };
      if (skippedOff) opts.logger.info(fields, 'plugin off');
      else opts.logger.warn(fields, 'plugin not loaded');
    }
    if (info.status !== 'ok' && opts.required?.includes(key)) {
      throw new PluginSetupError(`required plugin ${key} did not load (${info.status}): ${info.message}`);
    }
  }

  list(): PluginInfo[] {
    return this.infos.map((i) => ({ ...i, exports: { ...i.exports } }));
  }

  get<T>(type: string, id?: string, by?: string): T {
    const matches = this.infos.filter((i) => i.type === type && (id === undefined || i.id === id));
    const ok = matches.find((i) => i.status === 'ok');
    if (ok) return this.instances.get(pluginKey(ok.type, ok.id)) as T;
    const who = by ? `plugin ${by}: ` : '';
    const name = id ? pluginKey(type, id) : type;
    const failed = matches[0];
    if (failed) throw new Error(`${who}required plugin ${name} is ${failed.status}: ${failed.message}`);
    throw new Error(`${who}no plugin ${name} is initialised`);
  }

  getAll<T>(type: string): Map<string, T> {
    const out = new Map<string, T>();
    for (const i of this.infos) {
      if (i.type === type && i.status === 'ok') out.set(i.id, this.instances.get(pluginKey(i.type, i.id)) as T);
    }
    return out;
  }

  async close(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) {
      await close().catch(() => {}); // shutting down: nothing left to report to
    }
  }
}
