// Every configuration key berth reads, in one declarative table: its kind, its default and what it
// does. The configuration loader (src/config.ts) checks files against it, the plugins take their
// defaults from it, and `berth config default` (contrib/berth.toml) is rendered from it, so the
// documented keys and defaults are the ones the server applies (test/config-file.test.ts holds
// the plugins that keep their own key lists to it).

export type TomlValue = string | number | boolean | string[];

export type SettingKind =
  | 'string'
  | 'path'
  | 'address' // HOST:PORT, [IPv6]:PORT or unix:///path
  | 'integer'
  | 'number'
  | 'boolean'
  | 'string[]'
  | 'credentials'; // a table of `"host" = {username, secret}` tables

export interface Setting {
  key: string;
  kind: SettingKind;
  /** What it does: one line or a few, rendered as comments above it. */
  doc: string;
  /** The value the server uses when the key is unset. */
  default?: TomlValue;
  /** A default that depends on the machine or on other keys, in words; the key is rendered commented out. */
  computed?: string;
  /** For a key with neither: an example value, rendered commented out. */
  example?: TomlValue;
  enum?: readonly string[];
  min?: number;
  max?: number;
  pattern?: RegExp;
}

export interface PluginSettings {
  /** `<type>.<id>`, as in `[plugins."<type>.<id>"]`. */
  plugin: string;
  doc: string;
  settings: Setting[];
}

export const topSettings: Setting[] = [
  {
    key: 'root',
    kind: 'path',
    doc: 'persistent data: <root>/<plugin type>.<id>/',
    computed: '/var/lib/berth as root, else $XDG_DATA_HOME/berth (~/.local/share/berth)',
    example: '/var/lib/berth',
  },
  {
    key: 'state',
    kind: 'path',
    doc: 'runtime state (mounts, task bundles): what does not outlive a reboot',
    computed: '/run/berth as root, else $XDG_RUNTIME_DIR/berth (<root>/state without it)',
    example: '/run/berth',
  },
  {
    key: 'address',
    kind: 'address',
    doc: 'the management API: HOST:PORT or unix:///path; any address but loopback or a socket needs auth_token_file\n(or insecure_listen)',
    default: '127.0.0.1:7420',
  },
  {
    key: 'auth_token_file',
    kind: 'path',
    doc: 'a file holding the management API\'s token: every request but GET /healthz must then send\nAuthorization: Bearer <token> (the CLI: BERTH_TOKEN or --token-file)',
    computed: 'unset: no token; the address must then be loopback or a unix socket',
    example: '/etc/berth/api.token',
  },
  {
    key: 'insecure_listen',
    kind: 'boolean',
    doc: 'listen on an address that is neither loopback nor a unix socket without auth_token_file: anyone who\nreaches it may then delete images and run containers',
    default: false,
  },
  {
    key: 'socket_group',
    kind: 'string',
    doc: 'with a unix:// address: the group of the socket (mode 0660), a name or a numeric gid (containerd\'s [grpc] gid)',
    computed: "the server process's group",
    example: 'berth',
    pattern: /^(?:[A-Za-z_][A-Za-z0-9_.-]*\$?|\d+)$/,
  },
  { key: 'log_level', kind: 'string', doc: 'the server log (JSON lines on stdout)', default: 'info', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
  {
    key: 'required_plugins',
    kind: 'string[]',
    doc: 'plugins whose failure stops start-up (<type>.<id>)',
    default: ['io.berth.metadata.v1.level', 'io.berth.content.v1.content'],
  },
  { key: 'disabled_plugins', kind: 'string[]', doc: 'built-in plugins not to load, e.g. ["io.berth.runtime.v1.runc"]', default: [] },
];

/** The top-level keys that are tables rather than settings. */
export const topTables = ['plugins', 'proxy_plugins'] as const;

/** The keys of a proxy plugin's table (`[proxy_plugins.<name>]`). */
export const proxyPluginSettings: Setting[] = [
  { key: 'type', kind: 'string', doc: 'the kind of component: "snapshot" (the only kind so far)', enum: ['snapshot'], example: 'snapshot' },
  { key: 'address', kind: 'path', doc: "the serving process's unix socket (path or unix:///path)", example: '/run/other/berth.sock' },
  { key: 'snapshotter', kind: 'string', doc: 'its name on the other server', computed: "this table's name", example: 'overlayfs' },
  { key: 'namespace', kind: 'string', doc: "where the other server keeps this server's snapshots", default: 'berth-proxy' },
  {
    key: 'auth_token_file',
    kind: 'path',
    doc: "the other server's API token (its auth_token_file), sent to it as Authorization: Bearer",
    computed: 'none sent',
    example: '/etc/berth/other.token',
  },
];

const ms = { kind: 'integer', min: 0 } as const;

export const pluginSettings: PluginSettings[] = [
  {
    plugin: 'io.berth.service.v1.content',
    doc: 'the content API (uploads)',
    settings: [{ key: 'idle_writer_ms', ...ms, doc: "how long an upload's writer stays open between two PATCHes", default: 30000 }],
  },
  {
    plugin: 'io.berth.metadata.v1.level',
    doc: 'the metadata database (LevelDB)',
    settings: [
      {
        key: 'content_sharing_policy',
        kind: 'string',
        doc: 'shared: a namespace uploading a digest another namespace holds adopts it; isolated: only from\nnamespaces labelled containerd.io/namespace.shareable=true (containerd\'s policies)',
        default: 'shared',
        enum: ['shared', 'isolated'],
      },
      { key: 'unleased_expiry_ms', ...ms, doc: 'content, ingests and snapshots made without a lease are kept this long (0: kept)', default: 86400000 },
    ],
  },
  {
    plugin: 'io.berth.service.v1.pulls',
    doc: 'pulls from registries, and unpacking into snapshots',
    settings: [
      {
        key: 'hosts_dir',
        kind: 'path',
        doc: "containerd's hosts.toml folders: <hosts_dir>/<host>/hosts.toml (mirrors, capabilities, skip_verify,\nca, header, override_path)",
        computed: 'unset: every registry is its own host, HTTPS (plain HTTP on loopback)',
        example: '/etc/berth/certs.d',
      },
      {
        key: 'docker_config',
        kind: 'path',
        doc: "credentials from docker's config.json: auths, credHelpers, credsStore",
        computed: '$DOCKER_CONFIG/config.json, else ~/.docker/config.json',
        example: '/root/.docker/config.json',
      },
      { key: 'concurrency', kind: 'integer', min: 1, doc: 'blobs fetched at once per pull', default: 4 },
      { key: 'keep_failed_ms', ...ms, doc: "a failed or cancelled pull's lease (its partial blobs, for resuming) is kept this long", default: 86400000 },
      {
        key: 'resume_interrupted',
        kind: 'boolean',
        doc: 'at start, resume (under the same id) the pulls that were running when the server stopped;\nfalse: they stay `interrupted` until cancelled or pruned',
        default: true,
      },
      {
        key: 'keep_ended_s',
        kind: 'integer',
        min: 1,
        doc: 'ended pulls (done, failed, cancelled; and interrupted ones not resumed) are forgotten this long\nafter they stopped (seconds; what they fetched stays)',
        default: 604800,
      },
      { key: 'keep_ended_max', kind: 'integer', min: 1, doc: 'at most this many ended pulls are kept (the newest)', default: 1000 },
      {
        key: 'unpack_concurrency',
        kind: 'integer',
        min: 1,
        doc: 'layers extracted at once (overlayfs extracts independent layers side by side; each has a worker thread)',
        computed: 'the number of CPUs, at most 3',
        example: 3,
      },
      { key: 'unpack_sync', kind: 'boolean', doc: "flush the snapshots' file system (syncfs) before an unpack's snapshots are committed", default: true },
      {
        key: 'credentials',
        kind: 'credentials',
        doc: 'per registry host: username and secret (a password or a token), used before the docker config',
        computed: 'none',
      },
    ],
  },
  {
    plugin: 'io.berth.service.v1.registry',
    doc: 'the registry listener: the store served as an OCI registry (pull API only); off unless address is set',
    settings: [
      {
        key: 'address',
        kind: 'address',
        doc: 'HOST:PORT to serve the OCI distribution pull API on (nothing else is served there)',
        computed: 'unset: no registry listener (berth serve --registry-address sets it)',
        example: '127.0.0.1:5050',
      },
      { key: 'namespace', kind: 'string', doc: 'the berth namespace whose images and content it serves and fills', default: 'default' },
      {
        key: 'default_upstream',
        kind: 'string',
        doc: 'the registry for requests without ?ns=',
        computed: 'unset: digests only',
        example: 'docker.io',
      },
      { key: 'pull_through', kind: 'boolean', doc: 'fetch what is missing from the upstream (false: serve only what is held)', default: true },
      {
        key: 'auth_token_file',
        kind: 'path',
        doc: 'require Authorization: Bearer <the file\'s token> from clients (and fleet peers)',
        computed: 'unset: no token',
        example: '/etc/berth/registry.token',
      },
    ],
  },
  {
    plugin: 'io.berth.service.v1.fleet',
    doc: 'a fleet of berth nodes finding content on each other through etcd; off unless etcd_endpoints is set',
    settings: [
      {
        key: 'etcd_endpoints',
        kind: 'string[]',
        doc: 'etcd v3 client URLs, all http://HOST:PORT or all https://HOST:PORT',
        computed: 'unset: this node works alone',
        example: ['http://10.0.0.5:2379'],
      },
      { key: 'etcd_ca_file', kind: 'string', doc: "PEM CAs that sign etcd's certificate (https:// endpoints)", computed: "the system's roots", example: '/etc/berth/etcd-ca.pem' },
      {
        key: 'etcd_cert_file',
        kind: 'string',
        doc: "this node's client certificate for etcd's --client-cert-auth (with etcd_key_file)",
        computed: 'no client certificate',
        example: '/etc/berth/etcd-client.pem',
      },
      { key: 'etcd_key_file', kind: 'string', doc: "the client certificate's key (with etcd_cert_file)", computed: 'no client certificate', example: '/etc/berth/etcd-client-key.pem' },
      {
        key: 'node_name',
        kind: 'string',
        doc: 'unique in the fleet (letters, digits, . _ -)',
        computed: 'the host name',
        example: 'node-a',
        pattern: /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/,
      },
      {
        key: 'advertise_address',
        kind: 'address',
        doc: "where peers reach this node's registry listener (required when the listener is off or bound to 0.0.0.0)",
        computed: "the registry listener's address",
        example: '10.0.0.7:5050',
      },
      { key: 'lease_ttl_s', kind: 'integer', min: 2, max: 3600, doc: 'a node that stops renewing its etcd lease leaves the fleet this fast', default: 10 },
      { key: 'prefix', kind: 'string', doc: 'every key of the fleet lives under it', default: '/berth/fleet' },
      {
        key: 'namespace',
        kind: 'string',
        doc: 'whose content is advertised',
        computed: "the registry listener's namespace (default without one)",
        example: 'default',
      },
      { key: 'peer_timeout_ms', ...ms, doc: 'a peer that has not answered a request by then is passed over', default: 200 },
    ],
  },
  {
    plugin: 'io.berth.service.v1.snapshots',
    doc: 'the snapshots API',
    settings: [
      {
        key: 'default_snapshotter',
        kind: 'string',
        doc: 'the snapshotter pulls unpack into and commands use by default',
        computed: 'overlayfs when it loaded, else native',
        example: 'overlayfs',
      },
    ],
  },
  {
    plugin: 'io.berth.runtime.v1.runc',
    doc: 'containers and their tasks, run by runc (skipped, with the reason, when runc cannot be run)',
    settings: [{ key: 'binary', kind: 'path', doc: 'the runc to run containers with (a name on PATH or a path)', default: 'runc' }],
  },
  {
    plugin: 'io.berth.gc.v1.scheduler',
    doc: "when the garbage collector runs (containerd's scheduler settings)",
    settings: [
      { key: 'pause_threshold', kind: 'number', min: 0, max: 0.5, doc: 'at most this share of time spent collecting', default: 0.02 },
      { key: 'deletion_threshold', kind: 'integer', min: 0, doc: 'deletions that collect at once; 0 = any deletion, at the next check', default: 0 },
      { key: 'mutation_threshold', kind: 'integer', min: 0, doc: 'changes after which the next check collects', default: 100 },
      { key: 'schedule_delay_ms', ...ms, doc: 'delay of a collection a deletion or a request schedules', default: 0 },
      { key: 'startup_delay_ms', ...ms, doc: 'the first collection after start (0 = none)', default: 100 },
    ],
  },
];

/** A plugin's settings by key; empty for a plugin without any. */
export function settingsOf(plugin: string): Map<string, Setting> {
  return new Map((pluginSettings.find((p) => p.plugin === plugin)?.settings ?? []).map((s) => [s.key, s]));
}

/** A plugin's key → default, for the keys that have a fixed one. */
export function defaultsOf(plugin: string): Record<string, TomlValue> {
  return Object.fromEntries([...settingsOf(plugin).values()].filter((s) => s.default !== undefined).map((s) => [s.key, s.default!]));
}

/** The fixed default of a top-level key. */
export function topDefault<T extends TomlValue>(key: string): T {
  const s = topSettings.find((t) => t.key === key);
  if (s?.default === undefined) throw new Error(`no fixed default for ${key}`);
  return s.default as T;
}

/** Why `value` does not fit `s` (undefined when it does). Addresses are checked by the caller. */
export function settingProblem(s: Setting, value: unknown): string | undefined {
  const shown = JSON.stringify(value);
  switch (s.kind) {
    case 'string':
    case 'path':
    case 'address':
      if (typeof value !== 'string' || value === '') return `${shown} must be a non-empty string`;
      if (s.enum && !s.enum.includes(value)) return `${shown} must be one of ${s.enum.join(', ')}`;
      if (s.pattern && !s.pattern.test(value)) return `${shown} must match ${s.pattern.source}`;
      return undefined;
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return `${shown} must be a number`;
      if (s.kind === 'integer' && !Number.isInteger(value)) return `${shown} must be a whole number`;
      if ((s.min !== undefined && value < s.min) || (s.max !== undefined && value > s.max)) {
        return `${shown} must be ${s.max === undefined ? `at least ${s.min}` : `from ${s.min ?? '-∞'} to ${s.max}`}`;
      }
      return undefined;
    }
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `${shown} must be true or false`;
    case 'string[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'string') ? undefined : `${shown} must be a list of strings`;
    case 'credentials': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be a table of "host" = {username, secret}';
      for (const [host, cred] of Object.entries(value as Record<string, unknown>)) {
        const c = cred as Record<string, unknown> | null;
        if (typeof c !== 'object' || c === null) return `."${host}" must be a table with username and secret`;
        const extra = Object.keys(c).find((k) => k !== 'username' && k !== 'secret');
        if (extra !== undefined) return `."${host}": unknown key ${JSON.stringify(extra)} (known: username, secret)`;
        if (typeof c.username !== 'string' || typeof c.secret !== 'string') return `."${host}" needs a username and a secret (strings)`;
      }
      return undefined;
    }
  }
}

// ---- contrib/berth.toml: `berth config default` ----

const toml = (v: TomlValue): string => (Array.isArray(v) ? `[${v.map((x) => JSON.stringify(x)).join(', ')}]` : JSON.stringify(v));

function renderSetting(s: Setting): string[] {
  const lines = s.doc.split('\n').map((l) => `# ${l}`);
  if (s.kind === 'credentials') {
    lines.push('#   [plugins."io.berth.service.v1.pulls".credentials."registry.example.com:5000"]', '#   username = "me"', '#   secret = "s3cret"');
  } else if (s.default !== undefined) {
    lines.push(`${s.key} = ${toml(s.default)}`);
  } else {
    lines.push(s.computed!.startsWith('unset') ? `# ${s.computed}` : `# default: ${s.computed}`, `#${s.key} = ${toml(s.example!)}`);
  }
  return lines;
}

/** The configuration file with every key and its default: contrib/berth.toml. */
export function renderDefaultConfig(): string {
  const out = [
    '# berth configuration: every key, with its default (`berth serve --config FILE`).',
    '# Generated by `berth config default` from the table the server checks files against',
    '# (src/settings.ts); `berth config check FILE` validates a file. A key commented out has no',
    '# fixed default (what the server does without it is said above it); unknown keys are errors.',
    '# Command-line flags override the file, the file overrides the defaults.',
    '',
  ];
  for (const s of topSettings) out.push(...renderSetting(s), '');
  for (const p of pluginSettings) {
    out.push(`# ${p.doc}`, `[plugins."${p.plugin}"]`);
    for (const s of p.settings) out.push(...renderSetting(s));
    out.push('');
  }
  out.push(
    "# A snapshotter served by another process over a unix socket, speaking berth's snapshot API (e.g. a",
    '# second `berth serve` on that socket), used as the snapshotter named by the table (here "remote"):',
    '#[proxy_plugins.remote]',
  );
  for (const s of proxyPluginSettings) {
    out.push(`#   ${s.doc}${s.default === undefined && s.computed ? ` (default: ${s.computed})` : ''}`);
    out.push(`#${s.key} = ${toml(s.default ?? s.example!)}`);
  }
  return out.join('\n') + '\n';
}
