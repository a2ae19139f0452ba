/**
 * The stage A augmentations as a figure (issue #20): one labelled source slice
 * under each transform and preset, several seeds per row, beside the same
 * anatomy in the target appearances (for orientation only — nothing here
 * trains).
 *
 *   npx tsx --conditions=@purify/source tools/bench/augment/figure.ts --data DIR [--case ct_tr_000] [--seeds 4] [--out docs/figures/augmentations.png]
 *
 * DIR is the output of `purify data generate` (ct, and optionally mr/cbct with
 * the same case numbers). Rows: the target appearances of the slice (if
 * present); GIN; class-wise remapping; an IPA blend of two GIN views; then
 * `augmentSample` with each preset (spatial part included).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  blendImages,
  classwiseRemap,
  grayscaleImage,
  openDataset,
  randomConvAppearance,
  Rng,
  smoothRandomMask,
  tileHorizontally,
  tileVertically,
  writePng,
  type ImageArray,
  type RgbaImage,
} from '@purify/imaging';
import { AUGMENT_PRESETS, augmentSample, defaultNormalization, normalizeVolume, type AugmentLevel } from '@purify/training';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    case: { type: 'string', default: 'ct_tr_000' },
    seeds: { type: 'string', default: '4' },
    out: { type: 'string', default: 'docs/figures/augmentations.png' },
  },
});
if (values.data === undefined) throw new Error('--data DIR is required (the output of purify data generate)');
const dataDir = resolve(values.data);
const seeds = Number(values.seeds);

/** The normalised slice with the most labelled pixels of a case, and its label. */
async function loadSlice(domain: string, id: string, z?: number): Promise<{ image: Float32Array; label: Int32Array; shape: [number, number]; z: number } | undefined> {
  if (!existsSync(join(dataDir, domain))) return undefined;
  const ds = openDataset(join(dataDir, domain));
  const c = ds.getCase(id);
  if (c === undefined) return undefined;
  const volume = normalizeVolume(await c.loadImage(), defaultNormalization(ds.channelNames[0] ?? ''));
  const [nz, ny, nx] = volume.shape;
  const label = c.labelPath !== undefined ? await c.loadLabel() : undefined;
  let best = z ?? Math.floor(nz / 2);
  if (z === undefined && label !== undefined) {
    let most = -1;
    for (let k = 0; k < nz; k++) {
      let count = 0;
      for (let i = k * ny * nx; i < (k + 1) * ny * nx; i++) if ((label.data[i] as number) > 0) count++;
      if (count > most) [most, best] = [count, k];
    }
  }
  const plane = ny * nx;
  return {
    image: volume.data.slice(best * plane, (best + 1) * plane),
    label: label === undefined ? new Int32Array(plane) : Int32Array.from(label.data.subarray(best * plane, (best + 1) * plane) as ArrayLike<number>),
    shape: [ny, nx],
    z: best,
  };
}

const panel = (data: Float32Array, shape: [number, number]): RgbaImage => grayscaleImage({ data, shape }, { min: 0, max: 1 });

async function main(): Promise<void> {
  const ct = await loadSlice('ct', values.case);
  if (ct === undefined) throw new Error(`${dataDir}/ct has no case ${values.case}`);
  const img: ImageArray = { data: ct.image, shape: ct.shape };
  const lab: ImageArray<Int32Array> = { data: ct.label, shape: ct.shape };
  const rows: RgbaImage[] = [];
  const targets: RgbaImage[] = [panel(ct.image, ct.shape)];
  // MR slices are thicker: its grid has fewer slices, so take the one at the same relative height.
  for (const domain of ['mr', 'cbct']) {
    const ds = existsSync(join(dataDir, domain)) ? openDataset(join(dataDir, domain)) : undefined;
    const c = ds?.getCase(values.case.replace(/^ct/, domain));
    if (!c) continue;
    const nz = (await c.loadImage()).shape[0];
    const ctNz = (await openDataset(join(dataDir, 'ct')).getCase(values.case)!.loadImage()).shape[0];
    const t = await loadSlice(domain, c.id, Math.round((ct.z / ctNz) * nz));
    if (t) targets.push(panel(t.image, t.shape));
  }
  rows.push(tileHorizontally(targets));
  const transforms: [string, (rng: Rng) => Float32Array][] = [
    ['gin', (rng) => randomConvAppearance(img, rng).data],
    ['classwise', (rng) => classwiseRemap(img, lab, rng).data],
    ['ipa', (rng) => blendImages(randomConvAppearance(img, rng), randomConvAppearance(img, rng), smoothRandomMask(ct.shape[0], ct.shape[1], rng)).data],
  ];
  for (const [, f] of transforms) rows.push(tileHorizontally(Array.from({ length: seeds }, (_, s) => panel(f(new Rng(s + 1)), ct.shape))));
  const weight = new Float32Array(ct.image.length).fill(1);
  for (const level of ['strong', 'gin', 'classwise', 'gin-classwise'] as AugmentLevel[]) {
    rows.push(tileHorizontally(Array.from({ length: seeds }, (_, s) => panel(augmentSample({ image: ct.image, label: ct.label, weight }, ct.shape, AUGMENT_PRESETS[level].config, new Rng(100 + s)).image, ct.shape))));
  }
  const out = resolve(values.out);
  writePng(out, tileVertically(rows));
  process.stdout.write(`${out}: rows = [ct | mr | cbct], gin, classwise, ipa (gin ⊕ gin), presets strong, gin, classwise, gin-classwise; ${seeds} seeds each (case ${values.case}, slice ${ct.z})\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
