// The plugin registry (src/plugins/registry.ts): initialisation order, requirements, statuses,
// exports, required plugins and shutdown; and what GET /v1/plugins shows of a real server's.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  initOrder,
  pluginKey,
  PluginSet,
  PluginSetupError,
  SkipPlugin,
  type PluginLogger,
  type Registration,
} from '../src/plugins/registry.js';
import { builtinPlugins } from '../src/plugins/index.js';
import { startTestServer } from './fixtures/server.js';
import { overlayUnsupported } from './fixtures/unpack.js';

/** Why this kernel cannot mount overlayfs (then the overlayfs plugin is skipped), or undefined. */
const overlaySkip = await overlayUnsupported();

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** A registration whose init records itself in `log` and returns `<type>.<id>`. */
function reg(
  type: string,
  id: string,
  requires: string[] = [],
  extra: Partial<Registration<string>> = {},
  log?: string[],
): Registration {
  return {
    type,
    id,
    requires,
    async init() {
      log?.push(`init ${type}.${id}`);
      return `${type}.${id}`;
    },
    ...extra,
  } as Registration;
}

const keys = (rs: Registration[]) => rs.map((r) => pluginKey(r.type, r.id));

function logger(): PluginLogger & { warnings: Array<{ obj: object; msg: string }> } {
  const warnings: Array<{ obj: object; msg: string }> = [];
  return { warnings, info() {}, warn: (obj, msg) => void warnings.push({ obj, msg }) };
}

const opts = (extra: Partial<Parameters<typeof PluginSet.init>[1]> = {}) => ({
  root: '/nonexistent/berth-root',
  state: '/nonexistent/berth-state',
  logger: logger(),
  ...extra,
});

/**
 * Throws unless every plugin comes after every plugin of each type it requires — but those that
 * require `*`, which come after all the others.
 */
function assertDependencyOrder(order: Registration[]): void {
  order.forEach((r, i) => {
    const req = r.requires ?? [];
    order.forEach((o, j) => {
      if (o === r) return;
      const last = (o.requires ?? []).includes('*');
      const needed = req.includes('*') ? !last : req.includes(o.type) && !last;
      if (needed) {
        assert.ok(j < i, `${pluginKey(r.type, r.id)} comes before ${pluginKey(o.type, o.id)}, which it requires`);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// initOrder
// ---------------------------------------------------------------------------------------------

describe('initOrder', () => {
  test('a plugin comes after every plugin of each type it requires, whatever the listing order', () => {
    const regs = [
      reg('t.service', 'api', ['t.content', 't.meta']),
      reg('t.content', 'local', ['t.meta']),
      reg('t.gc', 'scheduler', ['t.service']),
      reg('t.meta', 'level'),
      reg('t.content', 'proxy', ['t.meta']),
      reg('t.meta', 'other'),
      reg('t.free', 'standalone'),
    ];
    const order = initOrder(regs);
    assert.equal(order.length, regs.length);
    assert.deepEqual(new Set(order), new Set(regs), 'each registration exactly once');
    assertDependencyOrder(order);
    // Concretely: both metadata plugins before both content plugins, which precede the service.
    const pos = (k: string) => keys(order).indexOf(k);
    for (const meta of ['t.meta.level', 't.meta.other']) {
      for (const c of ['t.content.local', 't.content.proxy']) assert.ok(pos(meta) < pos(c));
    }
    for (const c of ['t.content.local', 't.content.proxy']) assert.ok(pos(c) < pos('t.service.api'));
    assert.ok(pos('t.service.api') < pos('t.gc.scheduler'));
  });

  test('with no requirements, the listing order is kept', () => {
    const regs = [reg('t.b', '1'), reg('t.a', '2'), reg('t.c', '3')];
    assert.deepEqual(keys(initOrder(regs)), ['t.b.1', 't.a.2', 't.c.3']);
  });

  test('`*` means after every other plugin, including those listed later', () => {
    const regs = [reg('t.last', 'all', ['*']), reg('t.a', '1'), reg('t.b', '2', ['t.a']), reg('t.c', '3')];
    const order = initOrder(regs);
    assert.equal(keys(order).at(-1), 't.last.all');
    assertDependencyOrder(order);
  });

  test('two `*` plugins both come after all others and do not wait for each other', () => {
    const regs = [reg('t.x', 'star1', ['*']), reg('t.a', '1'), reg('t.y', 'star2', ['*']), reg('t.b', '2')];
    const order = keys(initOrder(regs));
    assert.deepEqual(order.slice(-2).sort(), ['t.x.star1', 't.y.star2']);
  });

  test('a `*` plugin of a type others require still comes last: requiring its type does not wait for it', () => {
    const regs = [reg('t.svc', 'listener', ['*']), reg('t.svc', 'api'), reg('t.svc', 'pulls', ['t.svc']), reg('t.run', 'runc', ['t.svc'])];
    const order = keys(initOrder(regs));
    assert.equal(order.at(-1), 't.svc.listener');
    assert.ok(order.indexOf('t.svc.api') < order.indexOf('t.svc.pulls'), 'pulls after the other service it requires');
    assert.ok(order.indexOf('t.svc.pulls') < order.indexOf('t.run.runc'));
  });

  test('a cycle is an error naming every plugin in it', () => {
    const regs = [
      reg('t.free', 'ok'),
      reg('t.a', 'one', ['t.c']),
      reg('t.b', 'two', ['t.a']),
      reg('t.c', 'three', ['t.b']),
    ];
    assert.throws(
      () => initOrder(regs),
      (err: Error) => {
        assert.ok(err instanceof PluginSetupError, `a PluginSetupError, got ${err}`);
        assert.match(err.message, /cycle/);
        for (const k of ['t.a.one', 't.b.two', 't.c.three']) assert.ok(err.message.includes(k), `names ${k}: ${err.message}`);
        assert.ok(!err.message.includes('t.free.ok'), `names only the cycle: ${err.message}`);
        return true;
      },
    );
  });

  test('a plugin requiring its own type comes after the other plugins of that type', () => {
    assert.deepEqual(keys(initOrder([reg('t.a', 'wrapper', ['t.a']), reg('t.a', 'inner')])), ['t.a.inner', 't.a.wrapper']);
    // Two of a type that both require the type wait for each other: a cycle.
    assert.throws(() => initOrder([reg('t.a', 'one', ['t.a']), reg('t.a', 'two', ['t.a'])]), /cycle.*t\.a\.one.*t\.a\.two|cycle.*t\.a\.two.*t\.a\.one/);
  });

  test('a required type no plugin provides is an error naming the plugin and the type', () => {
    assert.throws(
      () => initOrder([reg('t.a', 'one'), reg('t.b', 'two', ['t.a', 't.missing'])]),
      (err: Error) => {
        assert.ok(err instanceof PluginSetupError);
        assert.ok(err.message.includes('t.missing'), err.message);
        assert.ok(err.message.includes('t.b.two'), err.message);
        return true;
      },
    );
  });

  test('the same type and id registered twice is an error', () => {
    assert.throws(() => initOrder([reg('t.a', 'one'), reg('t.a', 'one')]), /t\.a\.one.*twice/);
  });
});

// ---------------------------------------------------------------------------------------------
// PluginSet.init
// ---------------------------------------------------------------------------------------------

describe('PluginSet', () => {
  test('initialises in dependency order; statuses, requires, exports and root are recorded', async () => {
    const log: string[] = [];
    const roots = new Map<string, { root: string; state: string; config: Record<string, unknown> }>();
    const record = (r: Registration): Registration => ({
      ...r,
      async init(ctx) {
        roots.set(pluginKey(r.type, r.id), { root: ctx.root, state: ctx.state, config: ctx.config });
        ctx.exports.root = ctx.root;
        ctx.exports.kind = r.id;
        return r.init(ctx);
      },
    });
    const regs = [
      record(reg('t.content', 'local', ['t.meta'], {}, log)),
      record(reg('t.meta', 'level', [], {}, log)),
    ];
    const set = await PluginSet.init(regs, opts({
      root: '/r',
      state: '/s',
      config: { 't.content.local': { answer: 42 } },
    }));
    try {
      assert.deepEqual(log, ['init t.meta.level', 'init t.content.local']);
      assert.deepEqual(set.list(), [
        { type: 't.meta', id: 'level', requires: [], status: 'ok', exports: { root: '/r/t.meta.level', kind: 'level' } },
        {
          type: 't.content',
          id: 'local',
          requires: ['t.meta'],
          status: 'ok',
          exports: { root: '/r/t.content.local', kind: 'local' },
        },
      ]);
      assert.deepEqual(roots.get('t.content.local'), {
        root: '/r/t.content.local',
        state: '/s/t.content.local',
        config: { answer: 42 },
      });
      assert.deepEqual(roots.get('t.meta.level')?.config, {}, 'a plugin with no table gets {}');
      assert.equal(set.get<string>('t.content'), 't.content.local');
      assert.equal(set.get<string>('t.meta', 'level'), 't.meta.level');
      assert.deepEqual([...set.getAll<string>('t.meta')], [['level', 't.meta.level']]);
    } finally {
      await set.close();
    }
  });

  test('list() is a copy: changing it does not change the set', async () => {
    const exporting = reg('t.a', 'one', [], {
      async init(ctx) {
        ctx.exports.k = 'v';
        return 'one';
      },
    });
    const set = await PluginSet.init([exporting], opts());
    const first = set.list();
    first[0].exports.k = 'changed';
    first[0].status = 'error';
    assert.deepEqual(set.list()[0], { type: 't.a', id: 'one', requires: [], status: 'ok', exports: { k: 'v' } });
    await set.close();
  });

  test('a plugin can get what it requires, through its init context', async () => {
    let seen: unknown;
    const set = await PluginSet.init(
      [
        reg('t.user', 'u', ['t.dep'], {
          async init(ctx) {
            seen = ctx.get<string>('t.dep');
            return 'u';
          },
        }),
        reg('t.dep', 'd'),
      ],
      opts(),
    );
    assert.equal(seen, 't.dep.d');
    await set.close();
  });

  test('SkipPlugin gives status skip with the reason; the rest still load', async () => {
    const log = logger();
    const set = await PluginSet.init(
      [
        reg('t.snapshotter', 'overlayfs', [], {
          async init() {
            throw new SkipPlugin('overlayfs is not supported on this kernel');
          },
        }),
        reg('t.snapshotter', 'native'),
      ],
      opts({ logger: log }),
    );
    try {
      const [overlay, native] = set.list();
      assert.equal(overlay.status, 'skip');
      assert.equal(overlay.message, 'overlayfs is not supported on this kernel');
      assert.equal(native.status, 'ok');
      assert.deepEqual([...set.getAll('t.snapshotter').keys()], ['native'], 'a skipped plugin has no instance');
      assert.ok(log.warnings.some((w) => JSON.stringify(w.obj).includes('t.snapshotter.overlayfs')), 'logged');
    } finally {
      await set.close();
    }
  });

  test('a throwing plugin is error with its message; a dependent that gets it is error naming it', async () => {
    const set = await PluginSet.init(
      [
        reg('t.content', 'local', ['t.meta'], {
          async init(ctx) {
            ctx.get('t.meta');
            return 'content';
          },
        }),
        reg('t.meta', 'level', [], {
          async init() {
            throw new Error('database locked by pid 1234');
          },
        }),
        reg('t.other', 'fine'),
      ],
      opts(),
    );
    try {
      const byKey = new Map(set.list().map((i) => [pluginKey(i.type, i.id), i]));
      assert.equal(byKey.get('t.meta.level')?.status, 'error');
      assert.equal(byKey.get('t.meta.level')?.message, 'database locked by pid 1234');
      const dependent = byKey.get('t.content.local');
      assert.equal(dependent?.status, 'error');
      assert.ok(dependent?.message?.includes('t.meta'), `names what failed: ${dependent?.message}`);
      assert.ok(dependent?.message?.includes('database locked by pid 1234'), `carries why: ${dependent?.message}`);
      assert.equal(byKey.get('t.other.fine')?.status, 'ok', 'unrelated plugins still load');
      assert.throws(() => set.get('t.meta'), /t\.meta.*error.*database locked/);
    } finally {
      await set.close();
    }
  });

  test('a failing plugin listed in required stops init with an error naming it; what loaded is closed', async () => {
    const closed: string[] = [];
    const regs = [
      reg('t.meta', 'level', [], { close: async () => void closed.push('t.meta.level') }),
      reg('t.content', 'local', ['t.meta'], {
        async init() {
          throw new Error('disk full');
        },
      }),
      reg('t.after', 'never', ['t.content'], {
        async init() {
          throw new Error('must not be initialised');
        },
      }),
    ];
    await assert.rejects(
      PluginSet.init(regs, opts({ required: ['t.content.local'] })),
      (err: Error) => {
        assert.ok(err instanceof PluginSetupError, `a PluginSetupError, got ${err}`);
        assert.ok(err.message.includes('t.content.local'), err.message);
        assert.ok(err.message.includes('disk full'), err.message);
        return true;
      },
    );
    assert.deepEqual(closed, ['t.meta.level']);
  });

  test('a skipped plugin listed in required stops init too, as in containerd', async () => {
    // containerd (cmd/containerd/server/server.go): any error from a required plugin's init,
    // ErrSkipPlugin included, fails start-up with "load required plugin <id>".
    const closed: string[] = [];
    await assert.rejects(
      PluginSet.init(
        [
          reg('t.meta', 'level', [], { close: async () => void closed.push('t.meta.level') }),
          reg('t.snapshotter', 'overlayfs', ['t.meta'], {
            async init() {
              throw new SkipPlugin('overlayfs is not supported');
            },
          }),
        ],
        opts({ required: ['t.snapshotter.overlayfs'] }),
      ),
      (err: Error) => {
        assert.ok(err.message.includes('t.snapshotter.overlayfs'), err.message);
        assert.ok(err.message.includes('overlayfs is not supported'), err.message);
        return true;
      },
    );
    assert.deepEqual(closed, ['t.meta.level']);
  });

  test('the same failure in a plugin not listed in required does not stop init', async () => {
    const set = await PluginSet.init(
      [
        reg('t.content', 'local', [], {
          async init() {
            throw new Error('disk full');
          },
        }),
      ],
      opts({ required: [] }),
    );
    assert.equal(set.list()[0].status, 'error');
    await set.close();
  });

  test('required or configured plugins that do not exist are errors naming them', async () => {
    await assert.rejects(PluginSet.init([reg('t.a', 'one')], opts({ required: ['t.a.two'] })), /t\.a\.two/);
    await assert.rejects(PluginSet.init([reg('t.a', 'one')], opts({ config: { 't.typo.one': {} } })), /t\.typo\.one/);
  });

  test('a cycle or missing type stops init with the registry error', async () => {
    await assert.rejects(PluginSet.init([reg('t.a', '1', ['t.b']), reg('t.b', '2', ['t.a'])], opts()), /cycle/);
    await assert.rejects(PluginSet.init([reg('t.a', '1', ['t.none'])], opts()), /t\.none/);
  });

  test('close runs in reverse order of initialisation, once, and survives a failing close', async () => {
    const closed: string[] = [];
    const closing = (key: string, fail = false) => ({
      close: async (instance: unknown) => {
        closed.push(`${key}=${String(instance)}`);
        if (fail) throw new Error(`close ${key} failed`);
      },
    });
    const set = await PluginSet.init(
      [
        reg('t.c', 'three', ['t.b'], closing('c')),
        reg('t.a', 'one', [], closing('a')),
        reg('t.b', 'two', ['t.a'], closing('b', true)),
        reg('t.skip', 'x', [], {
          async init() {
            throw new SkipPlugin('not here');
          },
          ...closing('skip'),
        }),
      ],
      opts(),
    );
    await set.close();
    assert.deepEqual(closed, ['c=t.c.three', 'b=t.b.two', 'a=t.a.one'], 'reverse order; skipped plugins are not closed');
    await set.close();
    assert.equal(closed.length, 3, 'a second close does nothing');
  });
});

// ---------------------------------------------------------------------------------------------
// Over HTTP
// ---------------------------------------------------------------------------------------------

describe('GET /v1/plugins', () => {
  test('lists the built-in plugins, ok, in initialisation order, with their root exports', async () => {
    const server = await startTestServer();
    try {
      const res = await fetch(`${server.url}/v1/plugins`);
      assert.equal(res.status, 200);
      const { items } = (await res.json()) as { items: Array<Record<string, any>> };
      const root = server.config.root;

      // The bare local store: it needs nothing (containerd's content plugin; labels and
      // namespaces live in the metadata layer over it).
      const content = items.find((p) => p.type === 'io.berth.content.v1');
      assert.ok(content, 'the content plugin is listed');
      assert.equal(content.id, 'content');
      assert.equal(content.status, 'ok');
      assert.deepEqual(content.requires, []);
      assert.equal(content.exports.root, join(root, 'io.berth.content.v1.content'));

      // The backend snapshotters: they need nothing. overlayfs is skipped, saying why, where the
      // kernel cannot mount it; native copies and works everywhere.
      const snapshotters = items.filter((p) => p.type === 'io.berth.snapshotter.v1');
      assert.deepEqual(snapshotters.map((p) => p.id), ['overlayfs', 'native']);
      for (const sn of snapshotters) {
        assert.deepEqual(sn.requires, [], `${sn.id} requires nothing`);
        if (sn.status === 'ok') assert.equal(sn.exports.root, join(root, `io.berth.snapshotter.v1.${sn.id}`));
      }
      const [overlayfs, native] = snapshotters;
      if (overlaySkip) {
        assert.equal(overlayfs.status, 'skip');
        assert.ok(overlayfs.message, 'a skipped overlayfs says why');
      } else {
        assert.equal(overlayfs.status, 'ok', `overlayfs works on this kernel: ${overlayfs.message}`);
      }
      assert.equal(native.status, 'ok', `native: ${native.message}`);

      // The namespaced metadata layer, over the local store and the snapshotters.
      const meta = items.find((p) => p.type === 'io.berth.metadata.v1');
      assert.ok(meta, 'the metadata plugin is listed');
      assert.equal(meta.id, 'level');
      assert.equal(meta.status, 'ok');
      assert.deepEqual(meta.requires, ['io.berth.content.v1', 'io.berth.snapshotter.v1']);
      assert.equal(meta.exports.root, join(root, 'io.berth.metadata.v1.level'));

      const events = items.find((p) => p.type === 'io.berth.events.v1');
      assert.ok(events, 'the events plugin is listed');
      assert.equal(events.id, 'exchange');

      const gc = items.find((p) => p.type === 'io.berth.gc.v1');
      assert.ok(gc, 'the gc plugin is listed');
      assert.equal(gc.id, 'scheduler');
      assert.deepEqual([...gc.requires].sort(), ['io.berth.content.v1', 'io.berth.events.v1', 'io.berth.metadata.v1']);

      const services = items.filter((p) => p.type === 'io.berth.service.v1').map((p) => p.id);
      assert.deepEqual([...services].sort(), ['content', 'fleet', 'images', 'leases', 'namespaces', 'pulls', 'registry', 'snapshots'], 'the services');
      const service = (id: string) => items.find((p) => p.type === 'io.berth.service.v1' && p.id === id)!;
      // The snapshots service picks the default snapshotter: overlayfs where it works, else native.
      assert.deepEqual([...service('snapshots').requires].sort(), ['io.berth.events.v1', 'io.berth.metadata.v1']);
      assert.equal(service('snapshots').exports.default, overlaySkip ? 'native' : 'overlayfs');
      // Pulls unpack through the snapshots service: they come after the other services.
      assert.deepEqual([...service('pulls').requires].sort(), ['io.berth.events.v1', 'io.berth.metadata.v1', 'io.berth.service.v1']);
      // The registry listener is off until an address is configured, and says how to turn it on.
      assert.equal(service('registry').status, 'skip');
      assert.match(service('registry').message, /no address configured/);
      // So is the fleet, until etcd endpoints are configured.
      assert.equal(service('fleet').status, 'skip');
      assert.match(service('fleet').message, /no etcd_endpoints configured/);

      // Containers and tasks, run by the host's runc.
      const runtime = items.find((p) => p.type === 'io.berth.runtime.v1');
      assert.ok(runtime, 'the runtime plugin is listed');
      assert.equal(runtime.id, 'runc');
      assert.deepEqual([...runtime.requires].sort(), ['io.berth.events.v1', 'io.berth.metadata.v1', 'io.berth.service.v1']);
      assert.match(runtime.exports.runc, /^runc version \d+\.\d+/, 'the first line of `runc --version`');
      assert.equal(runtime.exports.state, join(server.config.state, 'io.berth.runtime.v1.runc'));

      assert.equal(items.length, builtinPlugins.length, 'every built-in plugin, once');
      for (const p of items) {
        if (p !== overlayfs && p !== service('registry') && p !== service('fleet')) assert.equal(p.status, 'ok', `${p.type}.${p.id}: ${p.message}`);
      }
      const at = (type: string) => items.findIndex((p) => p.type === type);
      const last = (type: string) => items.reduce((n, p, i) => (p.type === type ? i : n), -1);
      assert.ok(at('io.berth.content.v1') < at('io.berth.metadata.v1'), 'initialisation order: content, then metadata');
      assert.ok(last('io.berth.snapshotter.v1') < at('io.berth.metadata.v1'), 'initialisation order: the snapshotters, then metadata');
      const lastService = items.reduce((n, p, i) => (p.type === 'io.berth.service.v1' && p.id !== 'registry' && p.id !== 'fleet' ? i : n), -1);
      assert.ok(lastService < at('io.berth.runtime.v1'), 'initialisation order: the services, then the runtime');
      // The registry listener requires `*`: it opens to clients once everything else is up; the
      // fleet too, after it (it advertises the listener's address).
      assert.deepEqual(items.slice(-2), [service('registry'), service('fleet')], 'the registry listener, then the fleet, are initialised last');
      // Every plugin after every plugin of each type it requires (but those that require `*`,
      // which come after all the others).
      items.forEach((p, i) => {
        for (const type of p.requires as string[]) {
          items.forEach((o, j) => {
            if (o.type === type && o !== p && !o.requires.includes('*')) assert.ok(j < i, `${p.type}.${p.id} listed after ${o.type}.${o.id}, which it requires`);
          });
        }
      });
      assert.deepEqual(items, server.plugins.list(), 'the API shows the server\'s plugin set');
    } finally {
      await server.destroy();
    }
  });

  test('shows a skipped and a failed plugin with their reasons', async () => {
    const server = await startTestServer({
      plugins: [
        // The built-in overlayfs, replaced by one that skips as on a kernel without overlayfs.
        ...builtinPlugins.filter((p) => pluginKey(p.type, p.id) !== 'io.berth.snapshotter.v1.overlayfs'),
        reg('io.berth.snapshotter.v1', 'overlayfs', [], {
          async init() {
            throw new SkipPlugin('overlayfs: not supported');
          },
        }),
        // io.berth.gc.v1.scheduler is a built-in now: the failing one is a second of its type.
        reg('io.berth.gc.v1', 'broken', ['io.berth.metadata.v1'], {
          async init() {
            throw new Error('bad schedule');
          },
        }),
      ],
    });
    try {
      const { items } = (await (await fetch(`${server.url}/v1/plugins`)).json()) as { items: Array<Record<string, any>> };
      const skipped = items.find((p) => p.id === 'overlayfs');
      assert.equal(skipped?.status, 'skip');
      assert.equal(skipped?.message, 'overlayfs: not supported');
      const failed = items.find((p) => p.id === 'broken');
      assert.equal(failed?.status, 'error');
      assert.equal(failed?.message, 'bad schedule');
      const registryListener = items.find((p) => p.type === 'io.berth.service.v1' && p.id === 'registry');
      assert.equal(registryListener?.status, 'skip', 'the registry listener is off without an address');
      const fleet = items.find((p) => p.type === 'io.berth.service.v1' && p.id === 'fleet');
      assert.equal(fleet?.status, 'skip', 'the fleet is off without etcd endpoints');
      for (const p of items.filter((i) => i !== skipped && i !== failed && i !== registryListener && i !== fleet)) {
        assert.equal(p.status, 'ok', `${p.type}.${p.id} unaffected: ${p.message}`);
      }
      // Without overlayfs, snapshots (and unpacking) fall back to native.
      const snapshots = items.find((p) => p.type === 'io.berth.service.v1' && p.id === 'snapshots');
      assert.equal(snapshots?.exports.default, 'native');
      const { items: snapshotters } = (await (await fetch(`${server.url}/v1/snapshotters`)).json()) as { items: Array<Record<string, any>> };
      assert.deepEqual(snapshotters, [{ name: 'native', default: true }]);
      const health = await fetch(`${server.url}/healthz`);
      assert.equal(health.status, 200, 'a failed optional plugin does not stop the server');
    } finally {
      await server.destroy();
    }
  });

  test('a failing required plugin stops start-up, naming it, and frees the root', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-plugins-'));
    try {
      const failing = reg('io.berth.gc.v1', 'scheduler', ['io.berth.metadata.v1'], {
        async init() {
          throw new Error('bad schedule');
        },
      });
      await assert.rejects(
        startTestServer({
          dir,
          // The built-in scheduler, replaced by one that fails.
          plugins: [...builtinPlugins.filter((p) => pluginKey(p.type, p.id) !== 'io.berth.gc.v1.scheduler'), failing],
          config: { requiredPlugins: ['io.berth.gc.v1.scheduler'] },
        }),
        /io\.berth\.gc\.v1\.scheduler.*bad schedule/,
      );
      // The failed start released the root lock and closed the metadata database.
      const server = await startTestServer({ dir });
      await server.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
