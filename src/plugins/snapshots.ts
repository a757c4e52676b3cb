// Plugins io.berth.snapshotter.v1: the backend snapshotters — `overlayfs` (skipped, with the
// reason, where overlayfs cannot be mounted), `native` (copies; works everywhere) — and the proxy
// snapshotters the configuration names (`[proxy_plugins.<name>] type = "snapshot"`).
import { mkdir } from 'node:fs/promises';
import { readTokenFile, type ProxyPluginConfig } from '../config.js';
import { NativeSnapshotter } from '../snapshots/native.js';
import { OverlaySnapshotter, overlaySupported } from '../snapshots/overlay.js';
import { ProxySnapshotter } from '../snapshots/proxy.js';
import type { Snapshotter } from '../snapshots/types.js';
import { SkipPlugin, type Registration } from './registry.js';

export const snapshotterType = 'io.berth.snapshotter.v1';

export const overlayfsPlugin: Registration<Snapshotter> = {
  type: snapshotterType,
  id: 'overlayfs',
  async init(ctx) {
    await mkdir(ctx.root, { recursive: true, mode: 0o700 });
    const reason = await overlaySupported(ctx.root);
    if (reason) throw new SkipPlugin(reason);
    ctx.exports.root = ctx.root;
    return OverlaySnapshotter.open(ctx.root);
  },
  close: (sn) => sn.close(),
};

export const nativePlugin: Registration<Snapshotter> = {
  type: snapshotterType,
  id: 'native',
  async init(ctx) {
    await mkdir(ctx.root, { recursive: true, mode: 0o700 });
    ctx.exports.root = ctx.root;
    return NativeSnapshotter.open(ctx.root);
  },
  close: (sn) => sn.close(),
};

/** A snapshotter another process serves on a unix socket, speaking berth's snapshot API. */
export function proxySnapshotterPlugin(name: string, cfg: ProxyPluginConfig): Registration<Snapshotter> {
  return {
    type: snapshotterType,
    id: name,
    async init(ctx) {
      const address = cfg.address.startsWith('unix://') ? cfg.address : `unix://${cfg.address}`;
      // berth's API client, loaded only when a proxy is configured.
      const { BerthClient } = await import('../client/http.js');
      const token = cfg.auth_token_file === undefined ? undefined : await readTokenFile(cfg.auth_token_file, `proxy_plugins.${name}.auth_token_file`);
      const client = new BerthClient(address, { namespace: cfg.namespace ?? 'berth-proxy', token });
      const sn = new ProxySnapshotter(client, cfg.snapshotter ?? name, address);
      try {
        await sn.walk(() => {}, ['name==berth-proxy-probe']);
      } catch (err) {
        await sn.close();
        throw err;
      }
      ctx.exports.address = address;
      ctx.exports.snapshotter = cfg.snapshotter ?? name;
      return sn;
    },
    close: (sn) => sn.close(),
  };
}
