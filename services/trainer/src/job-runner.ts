/**
 * Runs one adaptation job: data (through the target-label barrier of
 * `@purify/adaptation`), the starting model, the ports (gRPC clients, or the
 * in-process pipeline with `--inference local`), the round loop with its
 * checkpoint under the job folder, and the final model published to the
 * registry with provenance.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MODEL_FILES, ModelRegistry, type NormalizationSpec } from '@purify/artifacts';
import {
  LocalReliabilityPort,
  LocalTeacherPort,
  loadJobData,
  Method,
  resultRoundMetrics,
  runAdaptation,
  type AdaptationCallbacks,
  type AdaptationPorts,
  type AdaptationResult,
  type PolicyAddress,
} from '@purify/adaptation';
import { BorderMode, Modality, RlAblation, type AgentServiceClient, type JobSpec, type Metric, type ReliabilityServiceClient, type SegmenterServiceClient } from '@purify/proto';
import { decodeWeights, gitCommit, parseAugmentLevel, publishSegmentationModel, TrainingConfigError, type AugmentLevel } from '@purify/training';
import { rlAblationSettings, targetLossOf, type CheckedSpec } from './job-spec';
import { RoundTrace } from './round-trace';
import { reliabilityConfig, RemoteAgentPort, RemoteReliabilityPort, RemoteTeacherPort, type RetrySettings } from './remote-ports';

export interface RunnerSettings {
  readonly artifactsDir: string;
  /** `remote`: segmenter + reliability services; `local`: in this process (TensorFlow.js). */
  readonly inference: 'remote' | 'local';
  /** Worker threads for the training steps; undefined = the loop's default (`defaultTrainingWorkers`). */
  readonly trainingWorkers?: number | undefined;
  readonly segmenter: SegmenterServiceClient;
  readonly reliability: ReliabilityServiceClient;
  readonly agent: AgentServiceClient;
  readonly addresses: { readonly segmenter: readonly string[]; readonly reliability: readonly string[]; readonly agent: readonly string[] };
  readonly retry: RetrySettings;
}

export interface JobOutcome {
  readonly result: AdaptationResult;
  readonly published: { name: string; version: number } | undefined;
  readonly metrics: Metric[];
}

function modalityOf(m: Modality | undefined): Modality {
  return m === undefined || m === Modality.MODALITY_UNSPECIFIED ? Modality.MODALITY_MR : m;
}

/** The loop's `reliability` options from the spec map (local pipeline). */
function localReliability(spec: JobSpec, tile: readonly [number, number], multiple: number) {
  const c = reliabilityConfig(spec.reliability, tile, multiple, spec.seed);
  return { patchSize: c.patchSize, stride: c.stride, borderMode: c.borderMode === BorderMode.BORDER_MODE_PAD ? ('pad' as const) : ('shift' as const), splitByClass: c.splitByClass, ...(c.patchBatchSize > 0 ? { batchSize: c.patchBatchSize } : {}) };
}

/** The augmentation preset a model's provenance records (`strong`, `gin-classwise@1`); undefined (the loop's default) when absent or unknown to this release, with a warning for the latter. */
function augmentOfProvenance(recorded: string | undefined, warn: (message: string) => void): AugmentLevel | undefined {
  if (recorded === undefined || recorded === '') return undefined;
  try {
    return parseAugmentLevel(recorded);
  } catch (err) {
    if (!(err instanceof TrainingConfigError)) throw err;
    warn(`the init model was trained with augmentation ${JSON.stringify(recorded)}, which this release does not know; the source term uses the default preset (${err.message})`);
    return undefined;
  }
}

export async function runJob(
  jobId: string,
  spec: JobSpec,
  checked: CheckedSpec,
  settings: RunnerSettings,
  checkpointDir: string,
  callbacks: AdaptationCallbacks & { onWarning(message: string): void },
  signal: AbortSignal,
): Promise<JobOutcome> {
  const artifactsDir = resolve(settings.artifactsDir);
  const method = checked.method;

  // The starting model: its weights, configuration, tile, spacing and normalisation.
  let initial: { unet: ReturnType<typeof decodeWeights>['unet']; weights: ReturnType<typeof decodeWeights>['weights'] } | undefined;
  let tile: [number, number] = checked.imageSizeYx ? [checked.imageSizeYx[0], checked.imageSizeYx[1]] : [96, 96];
  let spacingXyMm: readonly [number, number] | undefined;
  let sourceNormalization: NormalizationSpec | undefined;
  let initText = 'none';
  let sourceAugment: AugmentLevel | undefined;
  if (spec.initModel !== undefined && spec.initModel.name !== '') {
    const v = new ModelRegistry(artifactsDir).get(spec.initModel.name, spec.initModel.version);
    initial = decodeWeights(readFileSync(join(v.dir, MODEL_FILES.weights)), `${v.dir}/${MODEL_FILES.weights}`);
    tile = [v.meta.inputSizeYx[0], v.meta.inputSizeYx[1]];
    spacingXyMm = v.meta.spacingXyMm;
    if (v.meta.normalization.kind !== 'zscore') sourceNormalization = v.meta.normalization;
    initText = `${v.meta.name}:${v.meta.version}`;
    // The source term keeps the augmentation the source model was trained with (provenance `augment`, e.g. gin-classwise@1).
    sourceAugment = augmentOfProvenance(v.meta.provenance['augment'], (m) => callbacks.onWarning(m));
  }

  const data = await loadJobData({
    method,
    source: { path: spec.source!.path, caseIds: spec.source!.caseIds },
    target: { path: (spec.target ?? spec.source)!.path, caseIds: spec.target === undefined ? [] : spec.target.caseIds },
    oracleLabels: spec.oracleLabels === undefined ? undefined : { path: spec.oracleLabels.path },
    sourceNormalization,
    spacingXyMm,
    imageSizeYx: tile,
    seed: spec.seed,
  });
  for (const w of data.warnings) callbacks.onWarning(w);

  const unet = initial?.unet ?? { seed: spec.seed };
  const numClasses = data.classes.length;
  const depth = initial?.unet.depth ?? 3;
  const multiple = 2 ** (depth - 1);
  const modality = modalityOf(spec.target?.modality);
  const teacherName = `${jobId.slice(0, 110)}.teacher`;
  const provenance = { job: jobId, method };
  let ports: AdaptationPorts;
  const agentTarget: { policy: PolicyAddress } | { experiment: string } | undefined =
    spec.agentTarget?.$case === 'policy' ? { policy: spec.agentTarget.policy } : spec.agentTarget?.$case === 'experiment' ? { experiment: spec.agentTarget.experiment } : undefined;
  const dataPaths = { source: resolve(spec.source!.path), target: resolve((spec.target ?? spec.source)!.path) };
  const policyProvenance = { job: jobId, method, ...dataPaths, seed: String(spec.seed) };
  const agent = method === Method.Rl ? new RemoteAgentPort(settings.agent, settings.addresses.agent, settings.retry, agentTarget, spec.seed, policyProvenance) : undefined;
  if (settings.inference === 'local') {
    const teacher = new LocalTeacherPort(teacherName);
    ports = { teacher, reliability: new LocalReliabilityPort(teacher, localReliability(spec, tile, multiple)), agent };
  } else {
    ports = {
      teacher: new RemoteTeacherPort(settings.segmenter, settings.addresses.segmenter, settings.retry, { artifactsDir, name: teacherName, classes: data.classes, tileYx: tile, spacingXyMm: data.spacingXyMm, modality, provenance }),
      reliability: new RemoteReliabilityPort(settings.reliability, settings.addresses.reliability, settings.retry, reliabilityConfig(spec.reliability, tile, multiple, spec.seed), modality),
      agent,
    };
  }

  // One trace per round: the round's calls to the other services run under its span.
  const rounds = new RoundTrace(checked.hyperparameters.rounds, checked.hyperparameters.batchSize);
  let result: AdaptationResult;
  try {
    result = await runAdaptation(
      {
        method,
        runId: jobId,
        source: data.source.train,
        sourceValidation: data.source.val,
        target: method === Method.SourceOnly && spec.target === undefined ? [] : data.target.volumes,
        oracleLabels: data.oracleLabels,
        numClasses,
        tileYx: tile,
        unet,
        initialWeights: initial?.weights,
        hyperparameters: checked.hyperparameters,
        adabn: spec.adabn,
        roundGuard: spec.hyperparameters?.keepLastRound === true ? false : undefined,
        targetLoss: targetLossOf(spec.hyperparameters?.targetLoss),
        sourceAugment,
        rl: spec.freezePolicy
          ? { simulatedShift: false, onlineFinetuning: false }
          : { simulatedShift: spec.simulatedShiftPretraining || !spec.onlineFinetuning, onlineFinetuning: spec.onlineFinetuning, ...rlAblationSettings(spec.rlAblation) },
        seed: spec.seed,
        ports: rounds.ports(ports),
        checkpointDir,
        resume: true,
        signal,
        workers: settings.trainingWorkers,
      },
      rounds.callbacks(callbacks),
    );
  } catch (err) {
    rounds.close(err);
    throw err;
  }
  rounds.close();
  if (result.stopReason !== 'completed') {
    result.model.dispose();
    return { result, published: undefined, metrics: [] };
  }

  // The figures of the round whose teacher is published (the round guard may keep an earlier one than the last).
  const metrics: Metric[] = Object.entries(resultRoundMetrics(result))
    .filter(([, v]) => Number.isFinite(v))
    .map(([name, value]) => ({ name, value, split: name.endsWith('source_val_dice') ? 'source-val' : name.startsWith('sim_') ? 'simulated-shift' : 'target-unlabelled', measuredAt: new Date() }));
  try {
    const commit = gitCommit();
    const version = publishSegmentationModel({
      artifactsDir,
      name: spec.outputModel || `adapted-${jobId}`.slice(0, 128),
      model: result.model,
      classes: data.classes,
      inputSizeYx: tile,
      spacingXyMm: data.spacingXyMm,
      normalization: data.targetNormalization,
      provenance: {
        job: jobId,
        method,
        ...dataPaths,
        seed: String(spec.seed),
        initModel: initText,
        rounds: String(result.roundsDone),
        ...(result.keptRound === undefined ? {} : { keptRound: String(result.keptRound) }),
        adabn: String(spec.adabn),
        ...(spec.rlAblation ? { rlAblation: RlAblation[spec.rlAblation] } : {}),
        stepsPerRound: String(checked.hyperparameters.stepsPerRound),
        policy: result.policy === undefined ? '' : `${result.policy.name}:${result.policy.version}`,
        inference: settings.inference,
        unet: JSON.stringify(result.unet),
        ...(commit === undefined ? {} : { commit }),
      },
      metrics: metrics.map((m) => ({ name: m.name, value: m.value, split: m.split })),
    });
    if (spec.promotePolicy && agent !== undefined && result.policy !== undefined) {
      // The hand-over to the next job: it resolves the policy at version 0 to this one.
      await agent.promote(result.policy, signal);
      callbacks.onLog?.(`policy ${result.policy.name}:${result.policy.version} promoted: the next job that uses ${result.policy.name} at version 0 starts from it`);
    }
    return { result, published: { name: version.meta.name, version: version.meta.version }, metrics };
  } finally {
    result.model.dispose();
  }
}
