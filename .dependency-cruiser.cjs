// berth's layering, checked by dependency-cruiser in `npm test` (test/layering.test.ts) and by
// `npm run layers`. Rooms follow the data flow, bottom to top; a room imports only rooms below
// it, so no folder can import a folder that imports it back. Each rule's comment says why.

/** Rooms from the bottom up. A room may import rooms of a lower rank only (and itself). */
const rooms = [
  // The content store: a library at the bottom; it holds the words every room shares (error kinds, filters, spans).
  ['store', '^store/', 0],
  // The image vocabulary (descriptors, media types, platforms, labels, times): every stage speaks it.
  ['oci', '^src/oci/', 1],
  // LevelDB transactions, shared by the metadata store and the snapshotters' metastores.
  ['level', '^src/level/', 1],
  // Leaf modules read by the composition layers: configuration, the root lock, the OpenAPI document.
  ['config', '^src/(config|rootlock|openapi|settings|version)\\.ts$', 1],
  // The API client and the wire types generated from openapi.yaml: the CLI, the proxy snapshotter
  // and the routes all speak them.
  ['client', '^src/client/', 1.5],
  ['events', '^src/events/', 2],
  ['remotes', '^src/remotes/', 2],
  ['snapshots', '^src/snapshots/', 2],
  ['metadata', '^src/metadata/', 3],
  ['gc', '^src/gc/', 4],
  ['unpack', '^src/unpack/', 4],
  ['pull', '^src/pull/', 5],
  // The push: the store's images out to a registry; it chooses an index's platform as the pull does.
  ['push', '^src/push/', 5.5],
  // Image archives (export, import): the store's images as a tar and back; they label as the pull does and read tar as the unpacker does.
  ['archive', '^src/archive/', 5.5],
  ['runtime', '^src/runtime/', 5],
  ['services', '^src/services/', 6],
  // The registry listener: serves the store and fills it through the pull, beside the services.
  ['registry', '^src/registry/', 6],
  // The fleet (membership, advertisements, claims over etcd): implements the pull's Fleet interface (pull/peers.ts), beside the services.
  ['fleet', '^src/fleet/', 6],
  ['plugins', '^src/plugins/', 7],
  ['http', '^src/http/', 8],
  ['routes', '^routes/', 8],
  ['server', '^src/server\\.ts$', 9],
  ['cli', '^src/cli/', 10],
];

const layerRules = rooms.map(([name, path, rank]) => {
  const above = rooms.filter(([other, , r]) => other !== name && r >= rank).map(([, p]) => `(${p})`);
  return {
    name: `layer-${name}`,
    comment: `${name} (rank ${rank}) imports only rooms below it: an upward or sideways import is how folder cycles start`,
    severity: 'error',
    from: { path },
    to: { path: above.join('|') },
  };
}).filter((rule) => rule.to.path !== '');

module.exports = {
  forbidden: [
    {
      name: 'store-imports-nothing-of-berth',
      comment: 'the content store is a library other programs could use: it must not reach up into berth',
      severity: 'error',
      from: { path: '^store/' },
      to: { path: '^(src|routes|bin)/' },
    },
    {
      name: 'oci-imports-only-store-words',
      comment: 'the image vocabulary is imported by every stage, so it may lean only on the store\'s own words (error kinds, labels, times)',
      severity: 'error',
      from: { path: '^src/oci/' },
      to: { path: '^(routes|bin)/|^src/(?!oci/)|^store/(?!(errors|labels|timestamp|types)\\.ts$)' },
    },
    {
      name: 'routes-call-services',
      comment: 'routes are thin (parse, call a service, map errors): they never drive a store, a plugin or a stage directly (types are fine; so are the parsers of a request\'s words: its namespace/lease context, durations, digests)',
      severity: 'error',
      from: { path: '^routes/' },
      to: {
        path: '^src/(metadata/(?!(context|duration)\\.ts$)|plugins/|snapshots/|gc/|pull/|runtime/|remotes/|unpack/|level/|events/)|^store/(?!(errors|digest)\\.ts$)',
        dependencyTypesNot: ['type-only'],
      },
    },
    {
      name: 'nothing-imports-cli',
      comment: 'the CLI is a client at the top: what others need from it belongs in src/client',
      severity: 'error',
      from: { pathNot: '^(src/cli/|bin/)' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'no-circular',
      comment: 'a module cycle makes load order matter and hides which module owns what',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist|test|bench)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.d.ts'] },
  },
};
