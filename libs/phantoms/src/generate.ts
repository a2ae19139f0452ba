import { join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '@purify/artifacts';
import { DatasetWriter, Rng, overlayImage, tileHorizontally, writeNifti, writePng, type Volume } from '@purify/imaging';
import { ORGAN_NAMES, sampleAnatomy } from './anatomy';
import { DEFAULT_GRID, DOMAINS, Domain, domainGrid, renderCase, type GridSpec } from './render';
import { IntensityAccumulator, type IntensityStats } from './stats';

/**
 * The built-in cross-domain benchmark: deterministic abdominal phantoms in a
 * labelled source domain (ct) and unlabelled target domains (mr, cbct), written
 * in the layout users bring (MSD / nnU-Net `dataset.json`).
 *
 *   OUT/benchmark.json              manifest: domains, paths (relative to OUT), seed, grid, generator version
 *   OUT/<domain>/dataset.json       ct: imagesTr+labelsTr (training), imagesTs+labelsTs (held-out)
 *                                   mr, cbct: imagesTr, imagesTs only — no labels in the dataset
 *   OUT/<domain>-eval/labelsTs/     target test labels: for evaluation ONLY
 *   OUT/<domain>-oracle/labelsTr/   target training labels: for the oracle upper bound ONLY
 *   OUT/previews/*.png              slices with label overlays
 *   OUT/intensity-stats.{json,md}   per-organ intensity statistics per domain
 *
 * Target labels live outside the target dataset folders, so code that is given a
 * target dataset cannot find them.
 */

export const GENERATOR_VERSION = 3;

export interface GenerateOptions {
  readonly outDir: string;
  readonly domains: readonly Domain[];
  readonly seed: number;
  /** Cases per domain and split. */
  readonly trainCases: number;
  readonly testCases: number;
  readonly grid: GridSpec;
  /** Called after each case. */
  readonly onProgress?: (done: number, total: number, caseId: string) => void;
}

export interface DomainOutput {
  readonly domain: Domain;
  readonly role: 'source' | 'target';
  /** dataset.json folder, relative to the benchmark folder. */
  readonly dataset: string;
  /** Target only: test labels for evaluation, and training labels for the oracle. */
  readonly evalLabels?: string;
  readonly oracleLabels?: string;
  readonly trainCases: readonly string[];
  readonly testCases: readonly string[];
  readonly intensity: readonly IntensityStats[];
}

export interface BenchmarkManifest {
  readonly generatorVersion: number;
  readonly seed: number;
  readonly grid: GridSpec;
  readonly labels: Readonly<Record<string, string>>;
  readonly domains: readonly DomainOutput[];
  readonly previews: readonly string[];
}

export class GenerateError extends Error {
  override readonly name = 'GenerateError';
}

/** FNV-1a over a case key: independent, reproducible seeds for every case. */
export function caseSeed(seed: number, domain: Domain, split: 'train' | 'test', index: number): number {
  const key = `${seed}:${domain}:${split}:${index}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function validateGenerateOptions(o: GenerateOptions): void {
  if (o.domains.length === 0) throw new GenerateError('--domains must name at least one of ct, mr, cbct');
  for (const d of o.domains) if (!DOMAINS.includes(d)) throw new GenerateError(`unknown domain ${JSON.stringify(d)} (expected ct, mr or cbct)`);
  if (new Set(o.domains).size !== o.domains.length) throw new GenerateError(`--domains lists a domain twice: ${o.domains.join(',')}`);
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new GenerateError(`--seed must be a non-negative integer, got ${o.seed}`);
  if (!Number.isInteger(o.trainCases) || o.trainCases < 1) throw new GenerateError(`train cases must be an integer ≥ 1, got ${o.trainCases}`);
  if (!Number.isInteger(o.testCases) || o.testCases < 1) throw new GenerateError(`test cases must be an integer ≥ 1, got ${o.testCases}`);
  const g = o.grid;
  if (!Number.isInteger(g.size) || g.size < 16 || g.size > 1024) throw new GenerateError(`--size must be an integer in [16, 1024], got ${g.size}`);
  if (!Number.isInteger(g.slices) || g.slices < 2 || g.slices > 512) throw new GenerateError(`--slices must be an integer in [2, 512], got ${g.slices}`);
}

/** Normalised display window for previews. */
function previewWindow(domain: Domain): { min: number; max: number } {
  return domain === Domain.MR ? { min: 0, max: 1000 } : { min: -200, max: 300 };
}

function previewPanels(image: Volume<Int16Array>, labels: Volume<Uint8Array>, domain: Domain) {
  const [nz, ny, nx] = image.shape;
  return [0.3, 0.45, 0.6, 0.75].map((f) => {
    const z = Math.min(nz - 1, Math.floor(nz * f));
    const off = z * ny * nx;
    return overlayImage(
      { data: image.data.subarray(off, off + ny * nx), shape: [ny, nx] },
      { ...previewWindow(domain), labels: labels.data.subarray(off, off + ny * nx) },
    );
  });
}

/** Generates the benchmark; deterministic in `seed` (same options → identical bytes). */
export function generateBenchmark(options: GenerateOptions): BenchmarkManifest {
  validateGenerateOptions(options);
  const { outDir, grid, seed } = options;
  const total = options.domains.length * (options.trainCases + options.testCases);
  let done = 0;
  const labelMap = new Map(Object.entries(ORGAN_NAMES).map(([k, v]) => [Number(k), v]));
  const previews: string[] = [];
  const outputs: DomainOutput[] = [];

  for (const domain of options.domains) {
    const isSource = domain === Domain.CT;
    const datasetDir = join(outDir, domain);
    const evalDir = join(outDir, `${domain}-eval`);
    const oracleDir = join(outDir, `${domain}-oracle`);
    const writer = new DatasetWriter(datasetDir, {
      name: `purify-phantom-${domain}`,
      description: `purify built-in abdominal phantoms, ${domain} appearance (${isSource ? 'labelled source' : 'unlabelled target'}); generator v${GENERATOR_VERSION}, seed ${seed}`,
      channelNames: [domain.toUpperCase()],
      labels: labelMap,
      extra: { purify: { generatorVersion: GENERATOR_VERSION, seed, domain, role: isSource ? 'source' : 'target', grid: domainGrid(domain, grid) } },
    });
    const stats = new IntensityAccumulator();
    const ids: Record<'train' | 'test', string[]> = { train: [], test: [] };
    for (const split of ['train', 'test'] as const) {
      const count = split === 'train' ? options.trainCases : options.testCases;
      for (let i = 0; i < count; i++) {
        const id = `${domain}_${split === 'train' ? 'tr' : 'ts'}_${String(i).padStart(3, '0')}`;
        const rng = new Rng(caseSeed(seed, domain, split, i));
        const anatomy = sampleAnatomy(rng);
        const rendered = renderCase(anatomy, domain, grid, rng);
        if (isSource) {
          writer.writeCase({ id, split, channels: [rendered.image], label: rendered.labels });
        } else {
          writer.writeCase({ id, split, channels: [rendered.image] });
          const labelDir = split === 'test' ? join(evalDir, 'labelsTs') : join(oracleDir, 'labelsTr');
          writeNifti(join(labelDir, `${id}.nii.gz`), rendered.labels);
        }
        stats.update(rendered.image.data, rendered.labels.data);
        ids[split].push(id);
        if (i < 2) {
          const path = join(outDir, 'previews', `${id}.png`);
          writePng(path, tileHorizontally(previewPanels(rendered.image, rendered.labels, domain)));
          previews.push(relative(outDir, path));
        }
        done += 1;
        options.onProgress?.(done, total, id);
      }
    }
    writer.finish();
    if (!isSource) {
      writeFileAtomic(join(evalDir, 'README.txt'), `Test labels of the ${domain} target domain. Evaluation only: never for training, pseudo-labels, model selection or rewards.\n`);
      writeFileAtomic(join(oracleDir, 'README.txt'), `Training labels of the ${domain} target domain. Only for the oracle upper bound.\n`);
    }
    const rel = (path: string): string => relative(outDir, path);
    outputs.push({
      domain,
      role: isSource ? 'source' : 'target',
      dataset: rel(datasetDir),
      ...(isSource ? {} : { evalLabels: rel(join(evalDir, 'labelsTs')), oracleLabels: rel(join(oracleDir, 'labelsTr')) }),
      trainCases: ids.train,
      testCases: ids.test,
      intensity: stats.aggregate(),
    });
  }

  const manifest: BenchmarkManifest = { generatorVersion: GENERATOR_VERSION, seed, grid, labels: ORGAN_NAMES, domains: outputs, previews };
  writeJsonAtomic(join(outDir, 'intensity-stats.json'), Object.fromEntries(outputs.map((o) => [o.domain, o.intensity])));
  writeFileAtomic(join(outDir, 'intensity-stats.md'), intensityTable(outputs));
  writeJsonAtomic(join(outDir, 'benchmark.json'), manifest);
  return manifest;
}

/** Markdown table: mean ± std (p5–p95) per organ and domain. */
export function intensityTable(outputs: readonly DomainOutput[]): string {
  const lines = ['| domain | unit | ' + Object.values(ORGAN_NAMES).join(' | ') + ' |', '|---|---|' + Object.values(ORGAN_NAMES).map(() => '---|').join('')];
  for (const o of outputs) {
    const cells = Object.keys(ORGAN_NAMES).map((label) => {
      const s = o.intensity.find((x) => x.label === Number(label));
      return s ? `${s.mean.toFixed(0)} ± ${s.std.toFixed(0)} (${s.p5.toFixed(0)}–${s.p95.toFixed(0)})` : '–';
    });
    lines.push(`| ${o.domain} | ${o.domain === Domain.MR ? 'MR a.u.' : 'HU'} | ${cells.join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}

export { DEFAULT_GRID };
