import * as fs from 'node:fs';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DatasetWriter, encodeNifti, makeVolume, NiftiError, writeNifti, type Volume } from '@purify/imaging';
import { initTrainingBackend } from '@purify/training';
import { AdaptationDataError, ForbiddenReadError } from './errors';
import { loadJobData, loadOracleLabels, ReadGuard } from './data';
import { LocalReliabilityPort, LocalTeacherPort, RuleAgentPort } from './local-ports';
import { resolveHyperparameters, runAdaptation } from './loop';
import { Method, METHODS } from './methods';

/**
 * The target-label barrier. On disk, in the layout `purify data generate` writes:
 *   ct/            labelled source
 *   mr/            target, with a planted labelsTr/ (must be ignored)
 *   mr-eval/labelsTs/    target TEST labels (evaluation only)
 *   mr-oracle/labelsTr/  target TRAINING labels (oracle only)
 * Every file read of the process is recorded (fs and fs/promises spies), and a
 * whole job — data loading plus two rounds of the loop — of every method is run.
 */

// Node's fs modules themselves, not an interop copy: a wrapper set on them sees every reader's calls.
const fsp = require('node:fs/promises') as typeof import('node:fs/promises');
const fsc = require('node:fs') as typeof fs;

const SHAPE: [number, number, number] = [2, 16, 16];
const SPACING: [number, number, number] = [2, 2, 5];

function squareCase(k: number, invert: boolean): { image: Volume; label: Volume } {
  const n = 16 * 16;
  const img = new Float32Array(2 * n);
  const lab = new Uint8Array(2 * n);
  for (let i = 0; i < 2 * n; i++) {
    const y = Math.floor((i % n) / 16);
    const x = i % 16;
    const inside = y >= 3 + k && y < 10 + k && x >= 4 && x < 11;
    img[i] = invert ? (inside ? 100 : 400) : inside ? 200 : -100;
    lab[i] = inside ? 1 : 0;
  }
  return { image: makeVolume(img, SHAPE, { spacingXyzMm: SPACING }), label: makeVolume(lab, SHAPE, { spacingXyzMm: SPACING }) };
}

const labels = new Map([
  [0, 'background'],
  [1, 'organ'],
]);

let root: string;
beforeAll(async () => {
  await initTrainingBackend('wasm');
  root = mkdtempSync(join(tmpdir(), 'adapt-barrier-'));
  const ct = new DatasetWriter(join(root, 'ct'), { name: 'ct', channelNames: ['CT'], labels });
  for (let k = 0; k < 3; k++) ct.writeCase({ id: `ct_tr_${k}`, split: 'train', channels: [squareCase(k, false).image], label: squareCase(k, false).label });
  ct.finish();
  const mr = new DatasetWriter(join(root, 'mr'), { name: 'mr', channelNames: ['MR'], labels });
  // Planted training labels inside the target dataset: must be ignored, with a warning.
  for (let k = 0; k < 2; k++) mr.writeCase({ id: `mr_tr_${k}`, split: 'train', channels: [squareCase(k, true).image], label: squareCase(k, true).label });
  mr.writeCase({ id: 'mr_ts_0', split: 'test', channels: [squareCase(0, true).image] });
  mr.finish();
  mkdirSync(join(root, 'mr-eval', 'labelsTs'), { recursive: true });
  writeNifti(join(root, 'mr-eval', 'labelsTs', 'mr_ts_0.nii.gz'), squareCase(0, true).label);
  mkdirSync(join(root, 'mr-oracle', 'labelsTr'), { recursive: true });
  for (let k = 0; k < 2; k++) writeNifti(join(root, 'mr-oracle', 'labelsTr', `mr_tr_${k}.nii.gz`), squareCase(k, true).label);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Records the path of every file opened or read while `work` runs. */
async function recordReads(work: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const record = (p: unknown): void => {
    if (typeof p === 'string' || p instanceof URL || Buffer.isBuffer(p)) seen.push(resolve(String(p)));
  };
  // Wrap each reading function by hand, keeping the original.
  const targets: [Record<string, unknown>, string][] = [
    [fsp, 'readFile'],
    [fsp, 'open'],
    [fsc, 'readFileSync'],
    [fsc, 'openSync'],
    [fsc, 'createReadStream'],
    [fsc, 'readFile'],
  ];
  const originals = targets.map(([obj, name]) => obj[name] as (...a: unknown[]) => unknown);
  targets.forEach(([obj, name], i) => {
    obj[name] = function (this: unknown, ...args: unknown[]) {
      record(args[0]);
      return Reflect.apply(originals[i]!, this, args);
    };
  });
  try {
    await work();
  } finally {
    targets.forEach(([obj, name], i) => (obj[name] = originals[i]));
  }
  return seen;
}

async function runJob(method: Method, adabn = false): Promise<{ warnings: readonly string[]; guardReads: readonly string[] }> {
  const data = await loadJobData({
    method,
    source: { path: join(root, 'ct'), caseIds: [] },
    target: { path: join(root, 'mr'), caseIds: [] },
    ...(method === Method.Oracle ? { oracleLabels: { path: join(root, 'mr-oracle', 'labelsTr') } } : {}),
    imageSizeYx: [16, 16],
    seed: 1,
  });
  const teacher = new LocalTeacherPort();
  const res = await runAdaptation({
    method,
    runId: 'barrier',
    source: data.source.train,
    sourceValidation: data.source.val,
    target: data.target.volumes,
    oracleLabels: data.oracleLabels,
    numClasses: 2,
    tileYx: [16, 16],
    unet: { depth: 2, baseWidth: 4 },
    hyperparameters: resolveHyperparameters(method, { rounds: 2, stepsPerRound: 1, batchSize: 2 }),
    adabn,
    rl: { pretrainEpisodes: 1, episodesPerRound: 1, episodeVolumes: 1, episodeSteps: 1 },
    seed: 1,
    ports: { teacher, reliability: new LocalReliabilityPort(teacher, { patchSize: 8, stride: 8 }), agent: new RuleAgentPort() },
  });
  res.model.dispose();
  return { warnings: data.warnings, guardReads: data.guard.reads };
}

const under = (dir: string) => (p: string): boolean => p === dir || p.startsWith(dir + sep);

describe('target labels never reach training code', () => {
  it.each(METHODS.filter((m) => m !== Method.Oracle).map((m) => [m]))('%s: a whole job never opens a target label file', async (method) => {
    let warnings: readonly string[] = [];
    const reads = await recordReads(async () => {
      ({ warnings } = await runJob(method));
    });
    // The recorder works: the job did read the source labels and the target images.
    expect(reads.some(under(join(root, 'ct', 'labelsTr')))).toBe(true);
    expect(reads.some(under(join(root, 'mr', 'imagesTr')))).toBe(true);
    // …and never anything under the eval, oracle or (planted) target label folders.
    for (const forbidden of [join(root, 'mr-eval'), join(root, 'mr-oracle'), join(root, 'mr', 'labelsTr'), join(root, 'mr', 'imagesTs')]) {
      expect(reads.filter(under(forbidden))).toEqual([]);
    }
    expect(warnings).toEqual([`target: ${join(root, 'mr')} has labels for 2 of its 2 training cases (labelsTr/); they are ignored — adaptation never reads target labels`]);
  });

  it.each([Method.Naive, Method.SourceOnly].map((m) => [m]))('%s with AdaBN: re-estimating statistics on the target reads its images and never a target label', async (method) => {
    const reads = await recordReads(async () => {
      await runJob(method, true);
    });
    expect(reads.some(under(join(root, 'mr', 'imagesTr')))).toBe(true);
    for (const forbidden of [join(root, 'mr-eval'), join(root, 'mr-oracle'), join(root, 'mr', 'labelsTr'), join(root, 'mr', 'imagesTs')]) {
      expect(reads.filter(under(forbidden))).toEqual([]);
    }
  });

  it('oracle: reads the oracle folder it was given, and still neither the eval labels nor the target dataset’s own labels', async () => {
    const reads = await recordReads(async () => {
      await runJob(Method.Oracle);
    });
    expect(reads.filter(under(join(root, 'mr-oracle', 'labelsTr'))).length).toBe(2);
    expect(reads.filter(under(join(root, 'mr-eval')))).toEqual([]);
    expect(reads.filter(under(join(root, 'mr', 'labelsTr')))).toEqual([]);
  });

  it.each([
    // [case, request change, error type, field, message]
    ['oracle labels for a non-oracle method', { method: 'rl', oracleLabels: { path: 'x' } }, AdaptationDataError, 'oracle_labels', '`oracle_labels` may only be given for the oracle method, got it for method rl'],
    ['the oracle without labels', { method: 'oracle' }, AdaptationDataError, 'oracle_labels', '`oracle_labels` is required by the oracle method'],
    ['a missing source dataset', { source: { path: '/nonexistent/ct', caseIds: [] } }, AdaptationDataError, 'source', 'source: dataset /nonexistent/ct does not exist'],
    ['an unknown target case', { target: { path: 'mr', caseIds: ['mr_tr_9'] } }, AdaptationDataError, 'target.case_ids', 'target.case_ids: case "mr_tr_9" is not a training case of ROOT/mr'],
  ])('refuses %s', async (_name, change, type, field, message) => {
    const c = change as { target?: { path: string; caseIds: string[] } };
    const req = {
      method: 'naive',
      source: { path: join(root, 'ct'), caseIds: [] },
      target: { path: join(root, 'mr'), caseIds: [] },
      imageSizeYx: [16, 16] as const,
      seed: 1,
      ...change,
      ...(c.target ? { target: { ...c.target, path: join(root, c.target.path) } } : {}),
    };
    const err = await loadJobData(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(type);
    expect(err).toMatchObject({ field, message: message.replace('ROOT', root) });
  });

  it('a job refuses target and source datasets whose classes differ', async () => {
    const other = new DatasetWriter(join(root, 'mr3'), { name: 'mr3', channelNames: ['MR'], labels: new Map([[0, 'background'], [1, 'liver']]) });
    other.writeCase({ id: 'a', split: 'train', channels: [squareCase(0, true).image] });
    other.finish();
    await expect(loadJobData({ method: 'naive', source: { path: join(root, 'ct'), caseIds: [] }, target: { path: join(root, 'mr3'), caseIds: [] }, imageSizeYx: [16, 16], seed: 1 })).rejects.toThrow(
      `target: ${join(root, 'mr3')} declares classes [0:background, 1:liver], the source declares [0:background, 1:organ]; they must match`,
    );
  });

  it('the read guard refuses paths outside the declared roots', async () => {
    const guard = new ReadGuard([join(root, 'mr')]);
    expect(() => guard.check(join(root, 'mr-eval', 'labelsTs', 'mr_ts_0.nii.gz'), 'label')).toThrow(ForbiddenReadError);
    expect(() => guard.check(join(root, 'mr', '..', 'mr-oracle'), 'x')).toThrow(`x: ${join(root, 'mr-oracle')} is outside the paths this job may read (${join(root, 'mr')})`);
    // The oracle loader itself goes through the guard.
    await expect(loadOracleLabels(join(root, 'mr-oracle', 'labelsTr'), [], 2, guard)).rejects.toThrow(ForbiddenReadError);
  });
});

describe('4D images (issue #25, item 4)', () => {
  it('a job refuses a target image with two volumes instead of adapting to its first one', async () => {
    // mr4d: one training case whose image holds 2 volumes of [2, 16, 16] (dims 16 × 16 × 2 × 2).
    const mr4d = new DatasetWriter(join(root, 'mr4d'), { name: 'mr4d', channelNames: ['MR'], labels });
    mr4d.writeCase({ id: 'mr4d_0', split: 'train', channels: [squareCase(0, true).image] });
    mr4d.finish();
    const path = join(root, 'mr4d', 'imagesTr', 'mr4d_0_0000.nii.gz');
    const two = makeVolume(new Float32Array(4 * 16 * 16).fill(1), [4, 16, 16], { spacingXyzMm: SPACING });
    const bytes = encodeNifti(two);
    [4, 16, 16, 2, 2].forEach((d, i) => new DataView(bytes.buffer).setInt16(40 + 2 * i, d, true));
    fsc.writeFileSync(path, gzipSync(bytes));
    const job = loadJobData({ method: 'naive', source: { path: join(root, 'ct'), caseIds: [] }, target: { path: join(root, 'mr4d'), caseIds: [] }, imageSizeYx: [16, 16], seed: 1 });
    await expect(job).rejects.toThrow(NiftiError);
    await expect(job).rejects.toThrow(
      `${path}: holds 2 volumes (dims x, y, z, … = 16 × 16 × 2 × 2) but one 3D image is expected; pick one with a volume index in 0..1 (\`--volume-index N\` where the command has it), or save that volume as its own 3D file`,
    );
  });
});
