// `berth images ...`: image records (a name pointing at a target descriptor) in the namespace.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { components } from '../client/openapi.js';
import { ApiError, BerthClient, seg } from '../client/http.js';
import type {
  Image,
  ImageCreate,
  ImageInspection,
  ImageList,
  ImageUnpackRequest,
  ImageUpdate,
  LeaseCreate,
  SnapshotCreate,
  SnapshotMounts,
  UnpackResult,
} from '../client/types.js';
import { mountAll, unmountAll } from '../snapshots/mount.js';
import { collect, labelPatch, parseLabelArgs, positiveInt } from './args.js';
import { listVerb } from './list.js';
import { defaultSnapshotter } from './snapshots.js';
import { age, formatLabels, humanSize, printFields, printJson, printTable } from './table.js';
import { rate } from './progress.js';
import { mediaTypes } from '../oci/mediatypes.js';

type ImageExportRequest = components['schemas']['ImageExportRequest'];
type ImageImportResult = components['schemas']['ImageImportResult'];
type ImageTagRequest = components['schemas']['ImageTagRequest'];

const shortTypes: Record<string, string> = {
  [mediaTypes.ociIndex]: 'oci index',
  [mediaTypes.ociManifest]: 'oci manifest',
  [mediaTypes.dockerManifestList]: 'docker list',
  [mediaTypes.dockerManifest]: 'docker manifest',
};

/** An image index or manifest type in short (`oci index`); others as they are. */
function shortType(mediaType: string): string {
  return shortTypes[mediaType] ?? mediaType;
}

/**
 * What the CLI shows of an OCI image config document, which the API passes on as it is (so
 * openapi.yaml types it as any object): the image spec's fields, not berth's.
 */
interface ImageConfigDocument {
  created?: string;
  config?: { Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; WorkingDir?: string; User?: string };
}

/** One entry of an image config's `history` (the image spec's), as the CLI shows it. */
interface HistoryEntry {
  created?: string;
  created_by?: string;
  empty_layer?: boolean;
  comment?: string;
}

function printInspection(i: ImageInspection): void {
  const config = i.config as ImageConfigDocument;
  const history = i.history as HistoryEntry[];
  const c = config.config ?? {};
  const lines: Array<[string, string]> = [
    ['name', i.name],
    ['target', `${i.target.digest} (${shortType(i.target.mediaType)}, ${humanSize(i.target.size)})`],
    ...(i.index ? [['manifest', `${i.manifestDescriptor.digest} (${shortType(i.manifestDescriptor.mediaType)}, ${humanSize(i.manifestDescriptor.size)})`] as [string, string]] : []),
    ['platform', i.platform ?? '-'],
    ['platforms', i.platforms.join(', ') || '-'],
    ['total size', `${i.totalSize} (${humanSize(i.totalSize)})`],
    ...(config.created ? [['created', config.created] as [string, string]] : []),
    ...(c.Entrypoint?.length ? [['entrypoint', JSON.stringify(c.Entrypoint)] as [string, string]] : []),
    ...(c.Cmd?.length ? [['cmd', JSON.stringify(c.Cmd)] as [string, string]] : []),
    ...(c.WorkingDir ? [['workdir', c.WorkingDir] as [string, string]] : []),
    ...(c.User ? [['user', c.User] as [string, string]] : []),
    ...(c.Env ?? []).map((e): [string, string] => ['env', e]),
  ];
  printFields(lines);
  process.stdout.write('\nlayers:\n');
  printTable(
    ['DIGEST', 'SIZE', 'DIFF ID', 'MEDIA TYPE'],
    i.layers.map((l) => [l.digest, humanSize(l.size), l.diffId ?? '-', l.mediaType]),
  );
  if (history.length === 0) return;
  process.stdout.write('\nhistory:\n');
  printTable(
    ['CREATED', 'CREATED BY', 'LAYER'],
    history.map((h) => [h.created ?? '-', (h.created_by ?? h.comment ?? '-').replace(/\s+/g, ' '), h.empty_layer ? 'empty' : 'yes']),
  );
}

export function registerImages(program: Command, client: () => BerthClient): void {
  const images = program.command('images').alias('image').description('manage images in the namespace');

  listVerb(images.command('ls').alias('list').description('list images'), {
    fetch: (filter) => client().json<ImageList>('GET', '/v1/images', { query: { filter } }),
    filterHelp: 'containerd filter on name, target.digest, target.mediatype, labels.<key>, annotations.<key> (repeat for OR)',
    quiet: { help: 'print only names', key: (i) => i.name },
    columns: ['NAME', 'TYPE', 'DIGEST', 'SIZE', 'UPDATED', 'LABELS'],
    row: (i) => [
      i.name,
      shortType(i.target.mediaType),
      i.target.digest,
      humanSize(i.target.size),
      age(i.updatedAt),
      formatLabels(i.labels),
    ],
  });

  images
    .command('get <name>')
    .description('show one image')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const image = await client().json<Image>('GET', `/v1/images/${seg(name)}`);
      if (opts.json) return printJson(image);
      const t = image.target;
      const lines: Array<[string, string]> = [
        ['name', image.name],
        ['media type', t.mediaType],
        ['digest', t.digest],
        ['size', `${t.size} (${humanSize(t.size)})`],
        ...Object.entries(t.annotations ?? {}).map(([k, v]): [string, string] => [`annotation ${k}`, v]),
        ...Object.entries(image.labels).map(([k, v]): [string, string] => [`label ${k}`, v]),
        ['created', image.createdAt],
        ['updated', image.updatedAt],
      ];
      printFields(lines);
    });

  images
    .command('inspect <name>')
    .description('what an image is made of: index, manifest, config, layers (with diff IDs), platforms, history, size')
    .option('--platform <platform>', 'the manifest of an index to show, os/arch[/variant] (default: this host\'s, or any stored)')
    .option('--json', 'print JSON (with the index, manifest and config documents)')
    .action(async (name: string, opts: { platform?: string; json?: boolean }) => {
      const inspection = await client().json<ImageInspection>('GET', `/v1/images/${seg(name)}/inspect`, {
        query: { platform: opts.platform },
      });
      if (opts.json) return printJson(inspection);
      printInspection(inspection);
    });

  images
    .command('create <name>')
    .description('create an image pointing at a target descriptor (the content need not be here yet)')
    .requiredOption('--digest <digest>', 'the target\'s digest, e.g. sha256:...')
    .requiredOption('--size <bytes>', 'the target\'s size in bytes', positiveInt)
    .requiredOption('--media-type <type>', `the target's media type, e.g. ${mediaTypes.ociIndex}`)
    .option('--label <k=v>', 'label the image (repeatable)', collect)
    .option('--annotation <k=v>', 'annotate the target descriptor (repeatable)', collect)
    .option('--json', 'print the image as JSON')
    .action(
      async (
        name: string,
        opts: { digest: string; size: number; mediaType: string; label?: string[]; annotation?: string[]; json?: boolean },
      ) => {
        const annotations = parseLabelArgs(opts.annotation ?? []);
        const image = await client().json<Image>('POST', '/v1/images', {
          json: {
            name,
            target: {
              mediaType: opts.mediaType,
              digest: opts.digest,
              size: opts.size,
              annotations: Object.keys(annotations).length > 0 ? annotations : undefined,
            },
            labels: parseLabelArgs(opts.label ?? []),
          } satisfies ImageCreate,
        });
        if (opts.json) printJson(image);
        else process.stdout.write(image.name + '\n');
      },
    );

  images
    .command('rm <name...>')
    .alias('remove')
    .description('remove images; what they referenced is collected unless something else keeps it')
    .option('--sync', 'return only after the garbage collection has removed what they held')
    .option('--target <digest>', 'remove only if the image\'s target has this digest')
    .action(async (names: string[], opts: { sync?: boolean; target?: string }) => {
      for (const name of names) {
        await client().json('DELETE', `/v1/images/${seg(name)}`, {
          query: { sync: opts.sync ? 'true' : undefined, target: opts.target },
        });
        process.stdout.write(name + '\n');
      }
    });

  images
    .command('label <name> [labels...]')
    .description('set labels (k=v) or remove them (k=) on an image; others stay')
    .option('--replace', 'replace all labels with the given ones')
    .option('--json', 'print the image as JSON')
    .action(async (name: string, args: string[], opts: { replace?: boolean; json?: boolean }) => {
      const image = await client().json<Image>('PATCH', `/v1/images/${seg(name)}`, { json: labelPatch(args, opts.replace) satisfies ImageUpdate });
      if (opts.json) printJson(image);
      else process.stdout.write(`${image.name} ${formatLabels(image.labels)}\n`);
    });

  images
    .command('unpack <name>')
    .description('unpack a stored image into snapshots (berth pull does this as it downloads)')
    .option('--snapshotter <name>', 'the snapshotter (default: the server\'s)')
    .option('--platform <platform>', 'the manifest of an index to unpack, os/arch[/variant]')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { snapshotter?: string; platform?: string; json?: boolean }) => {
      const r = await unpackImage(client(), name, opts);
      if (opts.json) return printJson(r);
      process.stdout.write(`${name}: ${r.chainId} in ${r.snapshotter} (${r.unpacked} layers extracted, ${r.existing} there already)\n`);
    });

  images
    .command('mount <name> <target>')
    .description('mount a read-only view of an image\'s file system at TARGET (on this machine; needs root)')
    .option('--snapshotter <name>', 'the snapshotter (default: the server\'s)')
    .option('--platform <platform>', 'the manifest of an index to mount, os/arch[/variant]')
    .action(async (name: string, target: string, opts: { snapshotter?: string; platform?: string }) => {
      const dir = resolve(target);
      const c = client();
      const unpacked = await unpackImage(c, name, opts);
      // The view lives in a lease named after the folder, so unmount finds it and the GC keeps it meanwhile.
      const lease = mountLease(dir);
      await c.json('POST', '/v1/leases', { json: { id: lease, labels: { 'berth.io/mount': dir, 'berth.io/image': name } } satisfies LeaseCreate });
      const leased = new BerthClient(c.address, { namespace: c.namespace, lease, token: c.token });
      try {
        const { mounts } = await leased.json<SnapshotMounts>('POST', `/v1/snapshotters/${seg(unpacked.snapshotter)}/snapshots/view`, {
          json: { key: dir, parent: unpacked.chainId } satisfies SnapshotCreate,
        });
        await mountAll(mounts, dir);
      } catch (err) {
        await c.json('DELETE', `/v1/snapshotters/${seg(unpacked.snapshotter)}/snapshots/${seg(dir)}`).catch(() => {});
        await c.json('DELETE', `/v1/leases/${seg(lease)}`).catch(() => {});
        throw err;
      } finally {
        await leased.close();
      }
      process.stdout.write(`${dir}\n`);
    });

  images
    .command('unmount <target>')
    .alias('umount')
    .description('unmount what berth images mount mounted at TARGET, and remove its view')
    .option('--snapshotter <name>', 'the snapshotter it was mounted from (default: the server\'s)')
    .action(async (target: string, opts: { snapshotter?: string }) => {
      const dir = resolve(target);
      const c = client();
      await unmountAll(dir);
      const sn = opts.snapshotter ?? (await defaultSnapshotter(c));
      await c.json('DELETE', `/v1/snapshotters/${seg(sn)}/snapshots/${seg(dir)}`).catch((err: ApiError) => {
        if (err.code !== 'not_found') throw err;
      });
      await c.json('DELETE', `/v1/leases/${seg(mountLease(dir))}`).catch((err: ApiError) => {
        if (err.code !== 'not_found') throw err;
      });
      process.stdout.write(`${dir}\n`);
    });
  images
    .command('export <file> <names...>')
    .description('write images to FILE (- for stdout) as an OCI image layout tar that docker load takes too (as ctr images export)')
    .option('--platform <platform>', 'the manifests of an index to export, os/arch[/variant] (default: this host\'s)')
    .option('--all-platforms', 'every manifest of an index')
    .option('--skip-missing', 'leave out what the store lacks (a platform not pulled) instead of failing')
    .action(async (file: string, names: string[], opts: { platform?: string; allPlatforms?: boolean; skipMissing?: boolean }) => {
      const res = await client().send('POST', '/v1/images/export', {
        json: {
          names,
          platform: opts.platform || undefined,
          allPlatforms: opts.allPlatforms || undefined,
          skipMissing: opts.skipMissing || undefined,
        } satisfies ImageExportRequest,
      });
      if (file === '-') return pipeline(res.body, process.stdout);
      // Written beside the target and renamed when whole: FILE is never a cut archive.
      const partial = `${file}.partial-${process.pid}`;
      try {
        await pipeline(res.body, createWriteStream(partial));
        await rename(partial, file);
      } catch (err) {
        await rm(partial, { force: true });
        throw err;
      }
    });

  images
    .command('import <file>')
    .description('import the images of an OCI layout or docker save archive (- for stdin), as ctr images import')
    .option('--base-name <name>', 'name images the archive names by tag alone <name>:<tag> (and take only full OCI ref names starting with it)')
    .option('--digests', 'also name each image <base-name or import-DATE>@<digest>')
    .option('--unpack', 'unpack each image (this host\'s platform) into the snapshotter')
    .option('--snapshotter <name>', 'with --unpack, the snapshotter (default: the server\'s)')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, opts: { baseName?: string; digests?: boolean; unpack?: boolean; snapshotter?: string; json?: boolean }) => {
      const size = file === '-' ? undefined : (await stat(file)).size;
      const body = file === '-' ? process.stdin : createReadStream(file, { highWaterMark: 1 << 20 });
      const progress = uploadProgress(file, size);
      body.on('data', (chunk: Buffer) => progress.add(chunk.length));
      let result: ImageImportResult;
      try {
        result = await client().json<ImageImportResult>('POST', '/v1/images/import', {
          query: {
            baseName: opts.baseName || undefined,
            digests: opts.digests ? 'true' : undefined,
            unpack: opts.unpack ? 'true' : undefined,
            snapshotter: opts.snapshotter || undefined,
          },
          body,
          headers: { 'content-type': 'application/x-tar', ...(size !== undefined ? { 'content-length': String(size) } : {}) },
        });
      } finally {
        progress.end();
      }
      if (opts.json) return printJson(result);
      for (const i of result.images) process.stdout.write(`${i.name}\t${i.target.digest}\n`);
      for (const u of result.unpacked ?? []) {
        process.stdout.write(`${u.image}: unpacked ${u.chainId} in ${u.snapshotter} (${u.unpacked} layers extracted, ${u.existing} there already)\n`);
      }
      process.stderr.write(`${result.blobs} blobs, ${humanSize(result.bytes)} written\n`);
    });

  images
    .command('tag <source> <target>')
    .description('name SOURCE\'s target TARGET as well (as ctr images tag)')
    .option('--force', 'replace an existing image named TARGET')
    .action(async (source: string, target: string, opts: { force?: boolean }) => {
      const image = await client().json<Image>('POST', `/v1/images/${seg(source)}/tag`, {
        json: { target, force: opts.force || undefined } satisfies ImageTagRequest,
      });
      process.stdout.write(`${image.name}\n`);
    });
}

/**
 * On a terminal, the bytes of the archive sent so far, redrawn at most every 200 ms on stderr;
 * elsewhere nothing (the result lines say what was imported).
 */
function uploadProgress(file: string, size: number | undefined): { add(bytes: number): void; end(): void } {
  const out = process.stderr;
  if (!out.isTTY) return { add() {}, end() {} };
  const started = Date.now();
  let sent = 0;
  let drawn = 0;
  const draw = () => {
    drawn = Date.now();
    const of = size !== undefined ? ` / ${humanSize(size)}` : '';
    out.write(`\r\x1b[Kimporting ${file}: ${humanSize(sent)}${of}  ${rate(sent, drawn - started)}`);
  };
  return {
    add(bytes) {
      sent += bytes;
      if (Date.now() - drawn >= 200) draw();
    },
    end() {
      draw();
      out.write('\n');
    },
  };
}

/** Unpacks (or finds unpacked) an image's snapshots. */
export function unpackImage(c: BerthClient, name: string, opts: { snapshotter?: string; platform?: string }): Promise<UnpackResult> {
  return c.json<UnpackResult>('POST', `/v1/images/${seg(name)}/unpack`, {
    json: { snapshotter: opts.snapshotter || undefined, platform: opts.platform || undefined } satisfies ImageUnpackRequest,
  });
}

/** The lease of a mount: lease ids are identifiers, so the folder is hashed. */
const mountLease = (dir: string): string => `mount-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`;
