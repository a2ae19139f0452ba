/**
 * Adaptation variants from one source model, in process (no services): each
 * variant runs `runAdaptation` with the local teacher/reliability ports and a
 * rule-based agent stand-in, and the resulting model (the EMA teacher) is
 * scored on the target's test set — the quick way to compare loop settings
 * before a benchmark run.
 *
 *   npx tsx --conditions=@purify/source tools/bench/adapt/probe.ts --artifacts DIR --data DIR --model NAME[:V] \
 *     [--target mr|cbct] [--seed 1] [--trajectory] VARIANT...
 *
 * VARIANT is `key=value,…` with keys method (default cbst), rounds (2), steps
 * (30, per round), lr (the loop's default), tw (target weight λ), aug (source
 * augmentation, default the model's own), taug (target, default strong),
 * portion (`start:end` kept portions), gate (rule / rl: a fixed pixel gate
 * instead of the class-balanced curriculum; ≤ 1/K keeps every pixel), prior (1: rule / rl with the source
 * labels' shape prior), balance (0: cbst / rule / rl without the per-class
 * normalisation of the target loss; `mass`: the class-mass loss), ema (the EMA teacher's momentum cap),
 * final (`student`: score the last student instead of the EMA teacher),
 * purifier (`oracle` / `oracle-fg`, with method=rule: the UPPER BOUND of
 * purification — the teacher's pseudo-labels with weight 0 on every pixel
 * the target TRAINING labels (`<target>-oracle/labelsTr`) say is wrong, resp.
 * only on the wrong pixels labelled an organ; a study of what a perfect
 * purifier could give, never a product path). `method=source-only` is the model as
 * is. `--trajectory` also scores each round's teacher (the EMA entering the
 * round) and prints it beside the round's label-free figures — for choosing a
 * label-free stop rule, never an input to one. DIR (data) is the output of `purify data generate`; the target test
 * labels (`<target>-eval/labelsTs`) are read by the evaluation only.
 * Prediction is TensorFlow.js on whole slices, so figures differ slightly from
 * the segmenter's sliding window; compare variants with each other.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { argmaxLabels, LocalReliabilityPort, LocalTeacherPort, loadOracleLabels, Method, NUM_FEATURES, ReadGuard, resolveHyperparameters, RuleAgentPort, runAdaptation, type PublishedTeacher, type ReliabilityPort, type ScoredVolume } from '@purify/adaptation';
import type { SegModel } from '@purify/models';
import { parseAugmentLevel } from '@purify/training';
import { loadStudyData, openStudyModel, STUDY_OPTIONS, studyArgs } from './target-test';

/**
 * Evaluation-only reliability: two regions per volume, the pixels whose
 * pseudo-label the target training label confirms (score 1) and the others
 * (score 0) — with `foregroundOnly`, wrong pixels labelled background count as
 * confirmed. With the rule's threshold the student trains on right pixels only.
 */
class OraclePurifier implements ReliabilityPort {
  constructor(
    private readonly teacher: LocalTeacherPort,
    private readonly labels: ReadonlyMap<string, Uint8Array>,
    private readonly k: number,
    private readonly foregroundOnly: boolean,
  ) {}

  async score(teacher: PublishedTeacher, v: Parameters<ReliabilityPort['score']>[1]): Promise<ScoredVolume> {
    const probs = await this.teacher.predict(teacher, v);
    const pseudoLabel = argmaxLabels(probs, this.k, v.shape);
    const truth = this.labels.get(v.id);
    if (truth === undefined) throw new Error(`no oracle label for ${v.id}`);
    const n = pseudoLabel.length;
    const maxProbability = new Float32Array(n);
    const regionIndex = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let m = 0;
      for (let c = 0; c < this.k; c++) m = Math.max(m, probs[c * n + i] as number);
      maxProbability[i] = m;
      const wrong = pseudoLabel[i] !== truth[i] && (!this.foregroundOnly || pseudoLabel[i] !== 0);
      regionIndex[i] = wrong ? 1 : 0;
    }
    return { numRegions: 2, features: new Float32Array(2 * NUM_FEATURES), numFeatures: NUM_FEATURES, scores: Float32Array.from([1, 0]), pseudoLabel, regionIndex, maxProbability };
  }
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { ...STUDY_OPTIONS, trajectory: { type: 'boolean', default: false } },
});

async function main(): Promise<void> {
  const args = studyArgs(values);
  const seed = args.seed;
  const { version: v, model: sourceModel, ...init } = await openStudyModel(args.artifacts, args.model);
  sourceModel.dispose();
  const target = args.target;
  const { data, k, testSet } = await loadStudyData(args.data, target, v, seed);
  const dice = (m: SegModel): number => testSet.score(m).organAverage.dice;
  const reliabilityFor = async (purifier: string | undefined, teacher: LocalTeacherPort): Promise<ReliabilityPort> => {
    if (purifier === undefined) return new LocalReliabilityPort(teacher, { patchSize: 32, stride: 16 });
    if (purifier !== 'oracle' && purifier !== 'oracle-fg') throw new Error(`purifier must be oracle or oracle-fg, got ${purifier}`);
    // Evaluation-only study: the target TRAINING labels, read for the upper bound and nothing else.
    const root = join(args.data, `${target}-oracle`, 'labelsTr');
    const labels = await loadOracleLabels(root, data.target.volumes, k, new ReadGuard([root]));
    return new OraclePurifier(teacher, labels, k, purifier === 'oracle-fg');
  };
  process.stdout.write(`${args.model} → ${target} (${testSet.volumes.length} test cases), seed ${seed}, ${new Date().toISOString()}\n`);
  for (const variant of positionals) {
    const cfg = Object.fromEntries(variant.split(',').map((kv) => kv.split('=') as [string, string]));
    const method = (cfg['method'] ?? 'cbst') as Method;
    const [ps, pe] = (cfg['portion'] ?? '').split(':').map(Number);
    // Evaluation only: each round's published teacher (the EMA after the previous round) scored on the target test set.
    const trajectory: number[] = [];
    const teacher = new (class extends LocalTeacherPort {
      override publish(model: SegModel): Promise<PublishedTeacher> {
        if (values.trajectory === true) trajectory.push(dice(model));
        return super.publish(model);
      }
    })();
    const t0 = Date.now();
    const res = await runAdaptation({
      method,
      runId: 'probe',
      source: data.source.train,
      sourceValidation: data.source.val,
      target: data.target.volumes,
      numClasses: k,
      tileYx: v.meta.inputSizeYx,
      unet: init.unet,
      initialWeights: init.weights,
      hyperparameters: resolveHyperparameters(method, {
        rounds: Number(cfg['rounds'] ?? 2),
        stepsPerRound: Number(cfg['steps'] ?? 30),
        batchSize: 8,
        ...(cfg['lr'] === undefined ? {} : { learningRate: Number(cfg['lr']) }),
        ...(cfg['tw'] === undefined ? {} : { targetWeight: Number(cfg['tw']) }),
        ...(ps === undefined || Number.isNaN(ps) ? {} : { keptPortionStart: ps, keptPortionEnd: pe }),
        ...(cfg['gate'] === undefined ? {} : { pixelGate: Number(cfg['gate']) }),
        ...(cfg['ema'] === undefined ? {} : { emaDecay: Number(cfg['ema']) }),
      }),
      finalModel: cfg['final'] === 'student' ? 'student' : 'teacher',
      sourceAugment: parseAugmentLevel(cfg['aug'] ?? v.meta.provenance['augment'] ?? 'strong'),
      targetAugment: parseAugmentLevel(cfg['taug'] ?? 'strong'),
      seed,
      shapePrior: cfg['prior'] === '1',
      targetLoss: cfg['balance'] === '0' ? 'uniform' : cfg['balance'] === 'mass' ? 'class-mass' : 'class-balanced',
      workers: 1,
      ports: { teacher, reliability: await reliabilityFor(cfg['purifier'], teacher), agent: new RuleAgentPort() },
    });
    const d = dice(res.model);
    res.model.dispose();
    const last = res.rounds[res.rounds.length - 1]?.metrics ?? {};
    if (values.trajectory === true) {
      res.rounds.forEach((r, i) => {
        const m = Object.entries(r.metrics).filter(([name]) => !name.startsWith('gate_class') && !name.startsWith('sim_')).map(([name, x]) => `${name} ${x.toFixed(4)}`).join(', ');
        process.stdout.write(`  round ${r.round}: teacher in ${target} Dice ${trajectory[i]?.toFixed(4) ?? '–'}; ${m}\n`);
      });
    }
    process.stdout.write(`${variant}: ${target} Dice ${d.toFixed(4)} (${((Date.now() - t0) / 1000).toFixed(0)} s; last round source_val_dice ${last['source_val_dice']?.toFixed(3) ?? '–'}, mean_weight ${last['mean_weight']?.toFixed(3) ?? '–'})\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
