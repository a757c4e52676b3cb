// Schema migrations, run at open. Version 1 (berth 0.1) kept content labels and expected
// digests un-namespaced, with ingests under their own ref in the backend; version 2 namespaces
// everything, so what version 1 had becomes namespace `default`'s.
import type { LocalStore } from '../../store/index.js';
import type { Labels } from '../oci/labels.js';
import { formatTimestamp } from '../oci/time.js';
import { nsKey, type Migrations } from './db.js';
import { type Sub } from '../level/tx.js';
import { defaultNamespace } from './context.js';

export function migrations(backend: LocalStore): Migrations {
  return {
    1: async (db, tx) => {
      const v1Labels = db.level.sublevel<string, { labels: Labels }>('content', { valueEncoding: 'json' }) as Sub<{ labels: Labels }>;
      const v1Ingests = db.level.sublevel<string, { expected?: string }>('ingests', { valueEncoding: 'json' }) as Sub<{ expected?: string }>;
      const now = new Date();
      tx.put(db.namespaces, defaultNamespace, { labels: {}, createdAt: formatTimestamp(now) });
      await backend.walk(async (info) => {
        const labels = (await v1Labels.get(info.digest))?.labels ?? {};
        const at = formatTimestamp(info.createdAt);
        tx.put(db.blobs, nsKey(defaultNamespace, info.digest), { size: info.size, labels, createdAt: at, updatedAt: at });
      });
      for await (const key of v1Labels.keys()) tx.del(v1Labels, key);
      // Version 1 ingest records share the `ingests` sublevel's name: read them all first.
      const expected = new Map<string, string | undefined>();
      for await (const [ref, record] of v1Ingests.iterator()) expected.set(ref, record.expected);
      for (const ref of expected.keys()) tx.del(v1Ingests, ref);
      const expireAt = formatTimestamp(new Date(now.getTime() + 24 * 60 * 60 * 1000));
      for (const status of await backend.listStatuses()) {
        const want = expected.get(status.ref);
        tx.put(db.ingests, nsKey(defaultNamespace, status.ref), {
          bref: status.ref,
          ...(want ? { expected: want } : {}),
          expireAt,
        });
      }
    },
  };
}
