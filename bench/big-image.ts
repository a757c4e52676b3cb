// The pull and mirror benchmarks' image: `layerCount` layers of incompressible data
// (`sizeMiB` MiB in all) pushed to `registry` as REPO:TAG, plus a small image for the untimed
// warm-up of every tool. Prints what was built and how long it took.
import { bigLayer, buildImage, pushImage, type Image } from '../test/fixtures/images.js';
import type { Registry } from '../test/fixtures/registry.js';
import { timed } from './measure.js';

const MiB = 1 << 20;
const MB = 1e6;

/** The names `pushBenchImages` is given by default: the image's repository, the warm-up image's, and their tag. */
export const BENCH_IMAGE = { repo: 'bench/big', warmRepo: 'bench/warm', tag: 'v1' } as const;

export interface BenchImages {
  image: Image;
  /** Every blob of `image` (manifest, config, layers) and its size. */
  expected: Map<string, number>;
  /** Bytes of all of them. */
  total: number;
  warmImage: Image;
}

export async function pushBenchImages(
  registry: Registry,
  names: { repo: string; warmRepo: string; tag: string },
  sizeMiB: number,
  layerCount: number,
): Promise<BenchImages> {
  const perLayer = Math.floor((sizeMiB * MiB) / layerCount);
  let image!: Image;
  const buildSeconds = await timed(async () => {
    const layers = [];
    for (let i = 0; i < layerCount; i++) layers.push(await bigLayer(perLayer, { seed: i + 1, path: `layer-${i}.bin` }));
    image = buildImage({ layers });
  });
  const pushSeconds = await timed(async () => {
    await pushImage(registry, names.repo, names.tag, image);
  });
  const expected = new Map<string, number>([[image.digest, image.size], ...image.blobs.map((b) => [b.digest, b.size] as [string, number])]);
  const total = [...expected.values()].reduce((a, b) => a + b, 0);
  console.log(
    `image ${registry.host}/${names.repo}:${names.tag}: ${expected.size} blobs (manifest, config, ${layerCount} layers of ${(perLayer / MiB).toFixed(1)} MiB), ` +
      `${(total / MB).toFixed(1)} MB; built in ${buildSeconds.toFixed(1)} s, pushed in ${pushSeconds.toFixed(1)} s`,
  );
  const warmImage = buildImage({ layers: [await bigLayer(4 * MiB, { seed: 101 }), await bigLayer(4 * MiB, { seed: 102 })] });
  await pushImage(registry, names.warmRepo, names.tag, warmImage);
  return { image, expected, total, warmImage };
}
