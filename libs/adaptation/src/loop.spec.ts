import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildUNet, type SegModel, type WeightSnapshot } from '@purify/models';
import { initTrainingBackend, predictSlices } from '@purify/training';
import { AdaptationConfigError } from './errors';
import { squareLabel, squareVolume } from './fixtures.test-util';
import { LocalReliabilityPort, LocalTeacherPort, RuleAgentPort } from './local-ports';
import { FEATURE_SCHEMA } from '@purify/reliability';
import { busiestSlice, maskFeatures, DEFAULT_WEIGHT_LEVELS, resolveHyperparameters, resultRoundMetrics, runAdaptation, type AdaptationOptions, type RoundReport } from './loop';
import type { ActRequest, PolicyAddress } from './ports';
import { Method, METHODS } from './methods';

beforeAll(async () => {
  // wasm with the training kernels of @purify/models: ~7× faster than the pure-JS cpu backend here.
  await initTrainingBackend('wasm');
});

const source = [0, 1, 2].map((i) => squareVolume(`src_${i}`, 10 + i));
const sourceVal = [squareVolume('val_0', 20)];
const target = [0, 1].map((i) => squareVolume(`tgt_${i}`, 30 + i, { invert: true }));

function options(method: Method, extra: Partial<AdaptationOptions> = {}): AdaptationOptions & { agent: RuleAgentPort; teacherPort: LocalTeacherPort } {
  const teacherPort = new LocalTeacherPort();
  const agent = new RuleAgentPort('rule-agent');
  return {
    method,
    runId: 'job1',
    source,
    sourceValidation: sourceVal,
    target,
    numClasses: 2,
    tileYx: [16, 16],
    unet: { depth: 2, baseWidth: 4, seed: 3 },
    // The tiny untrained network is neither 0.968-confident (K = 2) nor 0.5-reliable: low gates so every method has a target term.
    hyperparameters: resolveHyperparameters(method, { rounds: 2, stepsPerRound: 2, batchSize: 2, pixelGate: 0.5, ...(method === Method.Confidence ? { threshold: 0.5 } : method === Method.Rule ? { threshold: 0.01 } : {}) }),
    rl: { pretrainEpisodes: 1, episodesPerRound: 1, episodeVolumes: 1, episodeSteps: 1 },
    seed: 5,
    ports: { teacher: teacherPort, reliability: new LocalReliabilityPort(teacherPort, { patchSize: 8, stride: 8 }), agent },
    ...(method === Method.Oracle ? { oracleLabels: new Map(target.map((t, i) => [t.id, squareLabel(30 + i)])) } : {}),
    ...extra,
    agent,
    teacherPort,
  };
}

describe('busiestSlice', () => {
  it.each([
    // [label [z, h, w] slices as flat arrays, expected]
    [[[0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0]], 1],
    [[[2, 0, 0, 0], [0, 3, 0, 0]], 0],
    [[[0, 0, 0, 0], [0, 0, 0, 0]], 0],
    [[[0, 0, 0, 0], [0, 0, 0, 1], [4, 4, 4, 0]], 2],
  ])('%j: slice %d (most foreground, lowest on ties)', (slices, want) => {
    expect(busiestSlice(Uint8Array.from(slices.flat()), [slices.length, 2, 2])).toBe(want);
  });
});

describe('resultRoundMetrics (the figures published with the model)', () => {
  const rounds = [1, 2, 3].map((round) => ({ round, metrics: { source_val_dice: round / 10 } })) as unknown as RoundReport[];
  it.each([
    // [case, rounds, kept round, expected figures]
    ['no guard: the last round', rounds, undefined, { source_val_dice: 0.3 }],
    ['the guard kept round 1', rounds, 1, { source_val_dice: 0.1 }],
    ['the guard kept the starting model: no round made it', rounds, 0, {}],
    ['no round ran', [], undefined, {}],
  ])('%s', (_case, history, keptRound, want) => {
    expect(resultRoundMetrics({ rounds: history, keptRound })).toEqual(want);
  });
});

describe('runAdaptation with in-process ports and a tiny U-Net (cpu)', () => {
  it('oracle: trains on its labels — all-foreground labels leave the network more foreground than all-background ones', async () => {
    // Two oracle runs that differ only in their labels. Were the oracle batches source slices (or the
    // labels ignored), both runs would train identically and end with the same predictions.
    const meanForeground = (m: SegModel): number => {
      const k = m.config.numClasses;
      const values = target.flatMap((v) => {
        const [z, h, w] = v.shape;
        const p = predictSlices(m, v.image, v.shape); // [z, h, w, K]
        return Array.from({ length: z * h * w }, (_, i) => p[i * k + 1] as number);
      });
      return values.reduce((a, b) => a + b, 0) / values.length;
    };
    const foregroundAfter = async (label: number): Promise<number> => {
      const o = options(Method.Oracle, {
        oracleLabels: new Map(target.map((t) => [t.id, new Uint8Array(t.image.length).fill(label)])),
        hyperparameters: resolveHyperparameters(Method.Oracle, { rounds: 1, stepsPerRound: 4, batchSize: 2, learningRate: 1e-2 }),
      });
      const res = await runAdaptation(o, {});
      try {
        return meanForeground(res.model);
      } finally {
        res.model.dispose();
      }
    };
    const ones = await foregroundAfter(1);
    const zeros = await foregroundAfter(0);
    // Seeded and deterministic: measured 0.534 vs 0.491; exactly equal if the labels were not trained on.
    expect(ones - zeros).toBeGreaterThan(0.02);
  });

  it.each(METHODS.map((m) => [m]))('%s: two rounds, every step and round reported, no tensor leaked', async (method) => {
    const o = options(method);
    const before = tf.memory().numTensors;
    const steps: string[] = [];
    const rounds: RoundReport[] = [];
    const losses: { source: number; target: number }[] = [];
    const res = await runAdaptation(o, {
      onStep: (e) => {
        steps.push(`${e.round}.${e.step}`);
        losses.push({ source: e.sourceLoss, target: e.targetLoss });
      },
      onRound: (r) => rounds.push(r),
    });
    res.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(res.stopReason).toBe('completed');
    expect(res.roundsDone).toBe(2);
    // 2 rounds × 2 steps.
    expect(steps).toEqual(['1.1', '1.2', '2.1', '2.2']);
    expect(rounds.map((r) => r.round)).toEqual([1, 2]);
    for (const r of rounds) {
      expect(r.metrics['source_val_dice']).toBeGreaterThanOrEqual(0);
      expect(r.metrics['teacher_student_agreement']).toBeGreaterThanOrEqual(0);
      expect(Object.keys(r.timingsMs)).toEqual(expect.arrayContaining(['training', 'metrics']));
    }
    const usesTeacher = !['source-only', 'oracle'].includes(method);
    // The teacher's mean confidence on the target, for the methods that ask it for pseudo-labels: a max probability of K classes.
    for (const r of rounds) {
      if (usesTeacher) expect(r.metrics['target_confidence']).toBeGreaterThanOrEqual(1 / o.numClasses);
      if (usesTeacher) expect(r.metrics['target_confidence']).toBeLessThanOrEqual(1);
      else expect(r.metrics['target_confidence']).toBeUndefined();
    }
    // One teacher per round for the methods that need pseudo-labels, none otherwise.
    expect(o.teacherPort.published.length).toBe(usesTeacher ? 2 : 0);
    if (method === 'source-only') expect(rounds[0]!.weights.pixels).toBe(0);
    // The oracle's whole batch is labelled target slices under the supervised loss: no pseudo-label term.
    // Every other method with a target has one.
    expect(losses.every((l) => l.source > 0)).toBe(true);
    if (method === 'source-only' || method === 'oracle') expect(losses.every((l) => l.target === 0)).toBe(true);
    else expect(losses.some((l) => l.target > 0)).toBe(true);
    // Oracle and naive: every target pixel at weight 1 (2 volumes × 2 slices × 256 pixels).
    if (method === 'oracle' || method === 'naive') expect(rounds[0]!.weights).toMatchObject({ mean: 1, zeroFraction: 0, pixels: 1024 });
    if (method === 'rule' || method === 'rl') expect(rounds[0]!.metrics['mean_reliability']).toBeGreaterThan(0);
    // The round snapshot: one slice of the first target case, for the pseudo-label methods only.
    for (const r of rounds) {
      if (!usesTeacher) {
        expect(r.snapshot).toBeUndefined();
        continue;
      }
      const snap = r.snapshot!;
      const [, hh, ww] = target[0]!.shape;
      expect([snap.caseId, snap.height, snap.width]).toEqual([target[0]!.id, hh, ww]);
      expect(snap.image).toEqual(target[0]!.image.slice(snap.slice * hh * ww, (snap.slice + 1) * hh * ww));
      for (const a of [snap.pseudoLabel, snap.reliability, snap.weights, snap.prediction]) expect(a.length).toBe(hh * ww);
      expect([...snap.pseudoLabel, ...snap.prediction].every((c) => c === 0 || c === 1)).toBe(true);
      expect([...snap.reliability, ...snap.weights].every((v) => v >= 0 && v <= 1)).toBe(true);
      // naive weighs every pixel 1; rule with τ 0.01 keeps every region, and with K = 2 every pixel passes the 0.5 gate.
      if (method === 'naive' || method === 'rule') expect(snap.weights.every((v) => v === 1)).toBe(true);
    }
    if (method === 'rl') {
      // Round 1: one pretraining episode; round 2: one more. Each episode rewards every decision it made, with done.
      expect(rounds[0]!.metrics['sim_reward']).toEqual(expect.any(Number));
      expect(o.agent.rewards.length).toBeGreaterThan(0);
      expect(o.agent.rewards.every((r) => r.done && o.agent.decisions.get(r.decisionId)?.context['simulated'] === 'true')).toBe(true);
      // After each episode batch the policy is updated: versions 2 and 3.
      expect(o.agent.updates.map((u) => u.version)).toEqual([2, 3]);
      // Each new version records which run, round and phase trained it.
      expect(o.agent.updateProvenance).toEqual([
        { run: 'job1', round: '1', phase: 'episodes' },
        { run: 'job1', round: '2', phase: 'episodes' },
      ]);
      expect(res.policy).toEqual({ name: 'rule-agent', version: 3 });
    } else {
      expect(o.agent.decisions.size).toBe(0);
    }
  });

  it('rl pre-training: a PPO update after every pre-training episode; with calibration the severity follows the label-free gap', async () => {
    const o = options(Method.Rl, { rl: { pretrainEpisodes: 3, episodesPerRound: 1, episodeVolumes: 1, episodeSteps: 1, calibrateShift: true } });
    const res = await runAdaptation(o);
    res.model.dispose();
    // Round 1: updates after episodes 1, 2 and at the end of episode 3; round 2: one. Versions 2..5.
    expect(o.agent.updates.map((u) => u.version)).toEqual([2, 3, 4, 5]);
    const [r1, r2] = res.rounds;
    expect(r1!.metrics['sim_severity']).toBe(0.5);
    for (const m of ['target_reliability', 'sim_reliability']) expect(r1!.metrics[m]).toEqual(expect.any(Number));
    // Round 2 starts where round 1's controller left it: three steps of nextSeverity from 0.5 (sim_reliability is their mean).
    expect(r2!.metrics['sim_severity']).toBeGreaterThanOrEqual(0);
    expect(r2!.metrics['sim_severity']).toBeLessThanOrEqual(1);
    // Round 2's target difficulty is round 1's measured mean reliability.
    expect(r2!.metrics['target_reliability']).toBe(r1!.metrics['mean_reliability']);
  });

  describe('rl ablations (#21 item 7)', () => {
    it('untrained policy: the agent decides every round, but no episode, reward or update happens', async () => {
      const o = options(Method.Rl, { rl: { pretrainEpisodes: 2, episodesPerRound: 1, episodeVolumes: 1, episodeSteps: 1, policy: 'untrained' } });
      const res = await runAdaptation(o);
      res.model.dispose();
      expect(o.agent.decisions.size).toBeGreaterThan(0);
      expect(o.agent.rewards).toEqual([]);
      expect(o.agent.updates).toEqual([]);
      for (const r of res.rounds) expect(r.metrics['sim_reward']).toBeUndefined();
      expect(res.policy).toEqual({ name: 'rule-agent', version: 1 });
    });

    it('random policy: the agent is never asked; region weights come from the action levels, the same for the same seed', async () => {
      const run = async () => {
        const o = options(Method.Rl, { rl: { pretrainEpisodes: 2, episodesPerRound: 1, episodeVolumes: 1, episodeSteps: 1, policy: 'random' } });
        const rounds: RoundReport[] = [];
        const res = await runAdaptation(o, { onRound: (r) => rounds.push(r) });
        res.model.dispose();
        expect(o.agent.decisions.size).toBe(0);
        expect(res.policy).toBeUndefined();
        return rounds.map((r) => Array.from(r.snapshot!.weights));
      };
      const a = await run();
      const levels = new Set(DEFAULT_WEIGHT_LEVELS);
      const values = new Set(a.flat());
      for (const v of values) expect(levels.has(v)).toBe(true);
      expect(values.size).toBeGreaterThan(2); // not all kept, not all dropped
      expect(await run()).toEqual(a);
    });

    it('confidence features only: every column but max_probability and entropy reaches the agent as 0', async () => {
      const seen: Float32Array[] = [];
      const agent = new (class extends RuleAgentPort {
        override act(request: ActRequest, policy: PolicyAddress | undefined) {
          seen.push(request.observations.slice());
          return super.act(request, policy);
        }
      })('rule-agent');
      const o = options(Method.Rl, { rl: { pretrainEpisodes: 1, episodesPerRound: 1, episodeVolumes: 1, episodeSteps: 1, observedFeatures: 'confidence' } });
      const res = await runAdaptation({ ...o, ports: { ...o.ports, agent } });
      res.model.dispose();
      const f = FEATURE_SCHEMA.features.length;
      const kept = new Set(['max_probability', 'entropy'].map((n) => FEATURE_SCHEMA.features.findIndex((x) => x.name === n)));
      expect(seen.length).toBeGreaterThan(0);
      let nonzeroKept = 0;
      for (const obs of seen) {
        obs.forEach((v, i) => {
          if (!kept.has(i % f)) expect(v).toBe(0);
          else if (v !== 0) nonzeroKept++;
        });
      }
      expect(nonzeroKept).toBeGreaterThan(0);
    });

    it('refuses an unknown policy ablation', async () => {
      await expect(runAdaptation(options(Method.Rl, { rl: { policy: 'greedy' as never } }))).rejects.toThrow('rl.policy must be learned, untrained or random, got "greedy"');
    });
  });

  describe('maskFeatures', () => {
    const names = FEATURE_SCHEMA.features.map((x) => x.name);
    const f = names.length;
    it.each([
      [['max_probability'], ['max_probability']],
      [['max_probability', 'entropy'], ['max_probability', 'entropy']],
      [[], []],
    ])('keeps %j', (keep, expectedKept) => {
      const obs = Float32Array.from({ length: 2 * f }, (_, i) => i + 1);
      const out = maskFeatures(obs, f, keep);
      out.forEach((v, i) => expect(v).toBe(expectedKept.includes(names[i % f]!) ? i + 1 : 0));
      expect(obs[0]).toBe(1); // the input is not modified
    });
    it('refuses an unknown column', () => {
      expect(() => maskFeatures(new Float32Array(f), f, ['confidence'])).toThrow(AdaptationConfigError);
    });
  });

  it('online fine-tuning rewards the real-target decisions with the label-free proxy only', async () => {
    const o = options(Method.Rl, { rl: { simulatedShift: false, onlineFinetuning: true } });
    const res = await runAdaptation(o);
    res.model.dispose();
    // Round 1's decisions are rewarded in round 2 (done false), round 2's at its end (done true).
    const ctx = o.agent.rewards.map((r) => o.agent.decisions.get(r.decisionId)!.context['round']);
    expect(new Set(ctx)).toEqual(new Set(['0', '1']));
    expect(o.agent.rewards.filter((r) => r.done).every((r) => o.agent.decisions.get(r.decisionId)!.context['round'] === '1')).toBe(true);
    expect(res.rounds[1]!.metrics['proxy_reward']).toEqual(expect.any(Number));
  });

  it('returns the EMA teacher by default: after two steps, the mean of the students after step 1 and step 2 (α₁ = ½)', async () => {
    const run = async (steps: number, finalModel?: 'teacher' | 'student'): Promise<Float32Array> => {
      const o = options(Method.SourceOnly, { hyperparameters: resolveHyperparameters(Method.SourceOnly, { rounds: 1, stepsPerRound: steps, batchSize: 2 }), ...(finalModel ? { finalModel } : {}) });
      const res = await runAdaptation(o);
      try {
        return Float32Array.from(res.model.getWeights().flatMap((w) => Array.from(w.values)));
      } finally {
        res.model.dispose();
      }
    };
    const student1 = await run(1, 'student');
    const student2 = await run(2, 'student');
    const teacher1 = await run(1);
    const teacher2 = await run(2);
    // The warm-up α₀ = 0 makes the teacher a copy of the student after the first update.
    expect(Array.from(teacher1)).toEqual(Array.from(student1));
    // Then α₁ = min(1 − 1/2, 0.99) = ½ (DAFormer's warm-up).
    const expected = student1.map((v, i) => 0.5 * v + 0.5 * (student2[i] as number));
    expect(Math.max(...teacher2.map((v, i) => Math.abs(v - (expected[i] as number))))).toBeLessThan(1e-6);
    // And the teacher is not the student.
    expect(Math.max(...teacher2.map((v, i) => Math.abs(v - (student2[i] as number))))).toBeGreaterThan(1e-4);
  });

  describe('round guard (#21 item 6)', () => {
    const flat = (w: readonly WeightSnapshot[]): number[] => w.flatMap((x) => Array.from(x.values));
    const start = buildUNet({ depth: 2, baseWidth: 4, seed: 11, inputChannels: 1, numClasses: 2 });
    const initialWeights = start.getWeights();
    afterAll(() => start.dispose());
    const guarded = (roundGuard: AdaptationOptions['roundGuard'], extra: Partial<AdaptationOptions> = {}): AdaptationOptions =>
      options(Method.Naive, { initialWeights, roundGuard, hyperparameters: resolveHyperparameters(Method.Naive, { rounds: 3, stepsPerRound: 2, batchSize: 2, learningRate: 1e-2 }), ...extra });

    it('a guard no round passes: stops after `patience` rounds and returns the starting model, also when resumed', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'guard-'));
      try {
        // maxSourceDrop −1: a round would need a source validation Dice 1 above the start's — impossible.
        const o = guarded({ tolerance: null, maxSourceDrop: -1, patience: 1 }, { checkpointDir: dir });
        const logs: string[] = [];
        const rounds: RoundReport[] = [];
        const res = await runAdaptation(o, { onLog: (m) => logs.push(m), onRound: (r) => rounds.push(r) });
        try {
          expect([res.roundsDone, res.keptRound]).toEqual([1, 0]);
          expect(rounds[0]!.metrics['kept_round']).toBe(0);
          expect(rounds[0]!.metrics['teacher_source_val_dice']).toEqual(expect.any(Number));
          expect(flat(res.model.getWeights())).toEqual(flat(initialWeights));
          expect(logs.some((m) => m.startsWith('round guard after round 1: stopping: 1 round(s) in a row'))).toBe(true);
          const dice1 = rounds[0]!.metrics['teacher_source_val_dice']!.toFixed(3);
          expect(logs.some((m) => /^round guard: returning the teacher of round 0 \(source validation Dice \d\.\d{3}\) instead of round 1's \(/.test(m) && m.endsWith(`(${dice1})`))).toBe(true);
        } finally {
          res.model.dispose();
        }
        expect(readdirSync(dir).filter((f) => f.startsWith('kept-'))).toEqual(['kept-r0.bin']);
        // Resuming the stopped run trains nothing more and returns the same kept model, read from its file.
        const again = await runAdaptation({ ...o, resume: true });
        try {
          expect([again.roundsDone, again.keptRound]).toEqual([1, 0]);
          expect(flat(again.model.getWeights())).toEqual(flat(initialWeights));
        } finally {
          again.model.dispose();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a guard every round passes keeps the last round: the same model as without the guard', async () => {
      const on = await runAdaptation(guarded({ tolerance: null, maxSourceDrop: 1, patience: 2 }));
      const off = await runAdaptation(guarded(false));
      try {
        expect([on.roundsDone, on.keptRound, off.keptRound]).toEqual([3, 3, undefined]);
        expect(flat(on.model.getWeights())).toEqual(flat(off.model.getWeights()));
      } finally {
        on.model.dispose();
        off.model.dispose();
      }
    });

    it('is off where there is nothing to guard: no teacher (source-only), the student as the result', async () => {
      const so = await runAdaptation(options(Method.SourceOnly, { hyperparameters: resolveHyperparameters(Method.SourceOnly, { rounds: 1, stepsPerRound: 1, batchSize: 2 }) }));
      const student = await runAdaptation(guarded(undefined, { finalModel: 'student', hyperparameters: resolveHyperparameters(Method.Naive, { rounds: 1, stepsPerRound: 1, batchSize: 2 }) }));
      expect([so.keptRound, student.keptRound]).toEqual([undefined, undefined]);
      so.model.dispose();
      student.model.dispose();
    });
  });

  it.each([Method.Cbst, Method.Rule, Method.Rl].map((m) => [m]))('%s with the class-balanced curriculum: every class keeps pixels in every round, the kept portion grows', async (method) => {
    const o = options(method, {
      hyperparameters: resolveHyperparameters(method, { rounds: 2, stepsPerRound: 2, batchSize: 2, ...(method === Method.Rule ? { threshold: 0.01 } : {}) }),
    });
    const rounds: RoundReport[] = [];
    const res = await runAdaptation(o, { onRound: (r) => rounds.push(r) });
    res.model.dispose();
    expect(rounds.map((r) => r.metrics['kept_portion'])).toEqual([0.2, 0.8]);
    for (const r of rounds) {
      // Per class a threshold; the snapshot's pseudo-label classes each keep some weight.
      expect(r.metrics['gate_class_0']).toEqual(expect.any(Number));
      const snap = r.snapshot!;
      for (const c of new Set(snap.pseudoLabel)) {
        const kept = snap.weights.filter((w, i) => snap.pseudoLabel[i] === c && w > 0).length;
        expect(kept).toBeGreaterThan(0);
      }
    }
    // The later round keeps more pixels (a larger portion of each class).
    const keptPixels = (r: RoundReport): number => r.weights.pixels * (1 - r.weights.zeroFraction);
    expect(keptPixels(rounds[1]!)).toBeGreaterThan(keptPixels(rounds[0]!));
  });

  it('rule that keeps every pixel, without the class-balanced loss, trains exactly as naive (the normalisation is the only difference)', async () => {
    const losses = async (method: Method, extra: Partial<AdaptationOptions>): Promise<number[]> => {
      const o = options(method, extra);
      const out: number[] = [];
      const res = await runAdaptation({ ...o, hyperparameters: resolveHyperparameters(method, { rounds: 2, stepsPerRound: 2, batchSize: 2, pixelGate: 0.01, threshold: 1e-6 }) }, { onStep: (e) => out.push(e.targetLoss) });
      res.model.dispose();
      return out;
    };
    const naive = await losses(Method.Naive, {});
    expect(await losses(Method.Rule, { targetLoss: 'uniform' })).toEqual(naive);
    // Every region and pixel kept: the class-mass loss rescales nothing.
    expect(await losses(Method.Rule, { targetLoss: 'class-mass' })).toEqual(naive);
    // With the per-class normalisation (the default) the target term differs.
    expect(await losses(Method.Rule, {})).not.toEqual(naive);
  });

  it('source-only from an init model is that model; with AdaBN only the BatchNorm statistics move, to the target images’ statistics', async () => {
    const init = buildUNet({ depth: 2, baseWidth: 4, seed: 9, numClasses: 2 });
    const initial = init.getWeights();
    init.dispose();
    const run = async (adabn: boolean): Promise<WeightSnapshot[]> => {
      const logs: string[] = [];
      const steps: number[] = [];
      const res = await runAdaptation(options(Method.SourceOnly, { initialWeights: initial, adabn }), { onStep: (e) => steps.push(e.step), onLog: (m) => logs.push(m) });
      try {
        expect(steps).toEqual([]); // no training rounds
        expect(res.roundsDone).toBe(0);
        expect(logs.some((l) => l.startsWith('AdaBN:'))).toBe(adabn);
        return res.model.getWeights();
      } finally {
        res.model.dispose();
      }
    };
    const plain = await run(false);
    plain.forEach((w, i) => expect(Array.from(w.values)).toEqual(Array.from(initial[i]!.values)));
    const adapted = await run(true);
    // The first BatchNorm layer's input is conv(image) (no bias): its statistics over the 2 target volumes × 2 slices,
    // computed here with tf.conv2d and tf.moments directly.
    const kernel = initial.find((w) => w.name === 'enc0_conv1/kernel')!;
    const want = tf.tidy(() => {
      const x = tf.concat(target.map((v) => tf.tensor4d(v.image, [v.shape[0], v.shape[1], v.shape[2], 1])));
      const y = tf.conv2d(x, tf.tensor4d(kernel.values, kernel.shape as [number, number, number, number]), 1, 'same');
      const m = tf.moments(y, [0, 1, 2]);
      return { mean: Array.from(m.mean.dataSync()), variance: Array.from(m.variance.dataSync()) };
    });
    const got = new Map(adapted.map((w) => [w.name, Array.from(w.values)]));
    got.get('enc0_bn1/moving_mean')!.forEach((v, c) => expect(v).toBeCloseTo(want.mean[c]!, 4));
    got.get('enc0_bn1/moving_variance')!.forEach((v, c) => expect(v).toBeCloseTo(want.variance[c]!, 4));
    adapted.forEach((w, i) => {
      const same = Array.from(w.values).every((v, j) => v === initial[i]!.values[j]);
      expect(same).toBe(w.trainable); // trainable weights untouched, every running statistic re-estimated
    });
  });

  it('trains the student on 2 worker threads as in process (no BatchNorm): same step losses and final teacher', async () => {
    // The whole loop twice — teacher export, pseudo-labels, weights, the steps and the EMA — once per training path.
    const run = async (workers: number): Promise<{ losses: number[]; weights: Float32Array }> => {
      const losses: number[] = [];
      const o = options(Method.Naive, { workers, unet: { depth: 2, baseWidth: 4, seed: 3, norm: 'none' } });
      const res = await runAdaptation(o, { onStep: (e) => losses.push(e.loss, e.sourceLoss, e.targetLoss) });
      try {
        return { losses, weights: Float32Array.from(res.model.getWeights().flatMap((w) => Array.from(w.values))) };
      } finally {
        res.model.dispose();
      }
    };
    const one = await run(1);
    const two = await run(2);
    expect(two.losses).toHaveLength(12); // 2 rounds × 2 steps × (loss, source, target)
    two.losses.forEach((v, i) => expect(v).toBeCloseTo(one.losses[i]!, 5));
    expect(one.losses.filter((_, i) => i % 3 === 2).some((v) => v > 0)).toBe(true); // the target term is active
    expect(Math.max(...two.weights.map((v, i) => Math.abs(v - one.weights[i]!)))).toBeLessThan(5e-5);
  });

  it('resumes from the round checkpoint after a cancel and finishes the remaining round', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adapt-loop-'));
    try {
      const abort = new AbortController();
      const first = await runAdaptation(options(Method.Naive, { checkpointDir: dir, signal: abort.signal }), { onRound: (r) => r.round === 1 && abort.abort() });
      first.model.dispose();
      expect(first).toMatchObject({ stopReason: 'cancelled', roundsDone: 1 });
      const starts: number[] = [];
      const steps: string[] = [];
      const second = await runAdaptation(options(Method.Naive, { checkpointDir: dir, resume: true }), { onStart: (e) => starts.push(e.startRound), onStep: (e) => steps.push(`${e.round}.${e.step}@${e.globalStep}`) });
      second.model.dispose();
      expect(starts).toEqual([1]);
      // Round 2 only, continuing the optimiser's step count (2 steps were done in round 1).
      expect(steps).toEqual(['2.1@3', '2.2@4']);
      expect(second.rounds.map((r) => r.round)).toEqual([1, 2]);

      // A checkpoint of other settings is refused.
      await expect(runAdaptation(options(Method.Entropy, { checkpointDir: dir, resume: true }))).rejects.toThrow(/was made with different settings \(method\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    // [case, options change, field, message]
    ['oracle labels for a non-oracle method', { method: Method.Naive, oracleLabels: new Map() }, 'oracle_labels', '`oracle_labels` are for the oracle method only, got them for method naive'],
    ['the oracle without labels', { method: Method.Oracle, oracleLabels: undefined }, 'oracle_labels', '`oracle_labels` are required by the oracle method'],
    ['a labelled target volume', { target: [squareVolume('t', 1)] }, 'target', 'target volume t carries labels; target volumes must be unlabelled'],
    ['rl without a reliability port', { method: Method.Rl, ports: { teacher: new LocalTeacherPort(), reliability: undefined } }, 'ports.reliability', 'method rl needs a reliability port'],
    ['0 training workers', { workers: 0 }, 'workers', 'workers must be an integer in [1, 64], got 0'],
  ] as const)('refuses %s', async (_name, change, field, message) => {
    const err = await runAdaptation({ ...options(Method.Naive), ...change }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdaptationConfigError);
    expect(err).toMatchObject({ field, message });
  });

  it.each([
    // [case, method, hyper-parameters, field, message]
    ['zero rounds are the default, negative are not', Method.Naive, { rounds: -1 }, 'hyperparameters.rounds', '`hyperparameters.rounds` must be an integer in [1, 1000], got -1'],
    ['a batch too small for two domains', Method.Naive, { batchSize: 1 }, 'hyperparameters.batch_size', '`hyperparameters.batch_size` must be an integer in [2, 1024] (a batch holds source and target slices), got 1'],
    ['an EMA decay of 1', Method.Rl, { emaDecay: 1 }, 'hyperparameters.ema_decay', '`hyperparameters.ema_decay` must be a number in [0, 1), got 1'],
    ['a threshold above 1', Method.Confidence, { threshold: 1.5 }, 'hyperparameters.threshold', '`hyperparameters.threshold` must be a number in (0, 1], got 1.5'],
    ['a negative learning rate', Method.SourceOnly, { learningRate: -1 }, 'hyperparameters.learning_rate', '`hyperparameters.learning_rate` must be a number in (0, 1], got -1'],
  ] as const)('hyper-parameters: %s', (_name, method, h, field, message) => {
    const call = (): unknown => resolveHyperparameters(method, h);
    expect(call).toThrow(AdaptationConfigError);
    try {
      call();
    } catch (e) {
      expect(e).toMatchObject({ field, message });
    }
  });

  it('fills defaults: rule threshold 0.5, confidence threshold 0.968, batch 1 allowed for source-only', () => {
    expect(resolveHyperparameters(Method.Rule, {}).threshold).toBe(0.5);
    expect(resolveHyperparameters(Method.Confidence, {}).threshold).toBe(0.968);
    expect(resolveHyperparameters(Method.SourceOnly, { batchSize: 1 }).batchSize).toBe(1);
  });
});
