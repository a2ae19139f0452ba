import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { loadCheckpoint, MANIFEST_FILE, saveCheckpoint } from './checkpoint';
import { Norm, type UNetConfig } from './config';
import { EmaTeacher } from './ema';
import { CheckpointError } from './errors';
import { Rng } from './rng';
import type { SegModel } from './seg-model';
import { createAdam, trainStep, type TrainBatch } from './train';
import { buildUNet } from './unet';

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = mkdtempSync(join(tmpdir(), 'purify-ckpt-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

// Batch norm (running statistics), dropout (RNG) and an EMA teacher: every piece of state matters.
const CONFIG: Partial<UNetConfig> = { baseWidth: 4, depth: 2, numClasses: 3, dropout: 0.3, norm: Norm.Batch, seed: 21 };
const LR = { baseLr: 1e-2, decay: 'cosine' as const, warmupSteps: 2, totalSteps: 20 };

function batch(seed: number): TrainBatch {
  return tf.tidy(() => {
    const images = tf.randomNormal<tf.Rank.R4>([2, 8, 8, 1], 0, 1, 'float32', seed);
    const labels = tf.randomUniform<tf.Rank.R3>([2, 8, 8], 0, 3, 'int32', seed + 1);
    const weights = tf.randomUniform<tf.Rank.R3>([2, 8, 8], 0, 1, 'float32', seed + 2);
    return { images, labels, weights };
  });
}
/** The SyntaxError text this Node version gives for `text` (its wording differs between versions). */
function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    return String(err);
  }
  throw new Error(`${text} parsed`);
}
const flat = (m: SegModel): Float32Array => Float32Array.from(m.getWeights().flatMap((w) => Array.from(w.values)));
const maxAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('checkpoints', () => {
  it('resuming gives the same next step as the uninterrupted run (k = 3 steps, then 1)', async () => {
    const batches = [batch(1), batch(2), batch(3), batch(4)];
    const model = buildUNet(CONFIG);
    const optimizer = createAdam(model, { learningRate: LR, weightDecay: 0.01 });
    const ema = EmaTeacher.create(model, { alpha: 0.9 });
    const loader = new Rng(77);
    for (let k = 0; k < 3; k++) trainStep(model, batches[k]!, { optimizer, ema, clipNorm: 1 });
    loader.nextUint32();
    const dir = join(root, 'resume');
    await saveCheckpoint(dir, { model, optimizer, ema, rngs: { loader }, extra: { epoch: 1 } });

    // Uninterrupted: one more step.
    const next = trainStep(model, batches[3]!, { optimizer, ema, clipNorm: 1 });
    const [wantStudent, wantTeacher] = [flat(model), flat(ema.model)];

    // Resumed in a fresh model (another name prefix): the same step.
    const restored = await loadCheckpoint(dir);
    expect(restored.model.namePrefix).not.toBe(model.namePrefix);
    expect(restored.optimizer.step).toBe(3);
    expect(restored.ema!.updates).toBe(3);
    expect(restored.extra).toEqual({ epoch: 1 });
    expect(restored.rngStates).toEqual({ loader: loader.state });
    const again = trainStep(restored.model, batches[3]!, { optimizer: restored.optimizer, ema: restored.ema, clipNorm: 1 });
    expect(again).toEqual(next);
    expect(maxAbsDiff(flat(restored.model), wantStudent)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(flat(restored.ema!.model), wantTeacher)).toBeLessThanOrEqual(1e-6);
    expect(restored.model.rng.state).toBe(model.rng.state); // the dropout stream advanced identically

    restored.dispose();
    batches.forEach((b) => tf.dispose([b.images, b.labels, b.weights!]));
    ema.dispose();
    optimizer.dispose();
    model.dispose();
  });

  it('replaces an existing checkpoint whole and leaves no temporary folders', async () => {
    const model = buildUNet({ ...CONFIG, dropout: 0 });
    const optimizer = createAdam(model, { learningRate: 1e-3 });
    const dir = join(root, 'replace');
    await saveCheckpoint(dir, { model, optimizer, extra: 'first' });
    await saveCheckpoint(dir, { model, optimizer, extra: 'second' });
    expect(readdirSync(dir).sort()).toEqual([MANIFEST_FILE, 'optimizer.bin', 'weights.bin']);
    expect(readdirSync(root).filter((f) => f.startsWith('.replace'))).toEqual([]);
    const restored = await loadCheckpoint(dir);
    expect(restored.extra).toBe('second');
    expect(restored.ema).toBeUndefined();
    expect(flat(restored.model)).toEqual(flat(model));
    restored.dispose();
    optimizer.dispose();
    model.dispose();
  });

  describe('bad checkpoints', () => {
    let good: string;
    beforeAll(async () => {
      const model = buildUNet({ ...CONFIG, dropout: 0 });
      const optimizer = createAdam(model, { learningRate: 1e-3 });
      good = join(root, 'good');
      await saveCheckpoint(good, { model, optimizer });
      optimizer.dispose();
      model.dispose();
    });

    /** A copy of the good checkpoint, edited. */
    function variant(name: string, edit: (dir: string) => void): string {
      const dir = join(root, name);
      rmSync(dir, { recursive: true, force: true });
      cpSync(good, dir, { recursive: true });
      edit(dir);
      return dir;
    }

    it.each<[string, (dir: string) => void, (dir: string) => string]>([
      ['missing manifest', (d) => rmSync(join(d, MANIFEST_FILE)), (d) => `checkpoint '${d}': manifest.json is missing`],
      ['missing weights file', (d) => rmSync(join(d, 'weights.bin')), (d) => `checkpoint '${d}': cannot read weights.bin (ENOENT)`],
      [
        'flipped byte in the weights',
        (d) => {
          const b = readFileSync(join(d, 'weights.bin'));
          b[10] = b[10]! ^ 0xff;
          writeFileSync(join(d, 'weights.bin'), b);
        },
        (d) => `checkpoint '${d}': weights.bin is corrupt (sha256 differs from the manifest)`,
      ],
      [
        'truncated optimizer state',
        (d) => writeFileSync(join(d, 'optimizer.bin'), readFileSync(join(d, 'optimizer.bin')).subarray(0, 100)),
        (d) => {
          const m = JSON.parse(readFileSync(join(good, MANIFEST_FILE), 'utf8')) as { optimizer: { bytes: number } };
          return `checkpoint '${d}': optimizer.bin must be ${m.optimizer.bytes} bytes, got 100`;
        },
      ],
      [
        'unknown format version',
        (d) => {
          const m = JSON.parse(readFileSync(join(d, MANIFEST_FILE), 'utf8')) as Record<string, unknown>;
          writeFileSync(join(d, MANIFEST_FILE), JSON.stringify({ ...m, version: 9 }));
        },
        (d) => `checkpoint '${d}': expected format 'purify-checkpoint' version 1, got 'purify-checkpoint' version 9`,
      ],
      ['manifest not JSON', (d) => writeFileSync(join(d, MANIFEST_FILE), '{'), (d) => `checkpoint '${d}': manifest.json is not valid JSON (${jsonError('{')})`],
    ])('rejects a %s', async (name, edit, message) => {
      const dir = variant(name.replace(/\W+/g, '-'), edit);
      const before = tf.memory().numTensors;
      await expect(loadCheckpoint(dir)).rejects.toThrow(new CheckpointError(message(dir)));
      expect(tf.memory().numTensors).toBe(before);
    });
  });
});
