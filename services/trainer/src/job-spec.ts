/**
 * Checking a `JobSpec` at the edge (StartJob): every refusal is
 * INVALID_ARGUMENT naming the field as the client spells it.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Method as WireMethod, RlAblation, TargetLoss, type JobSpec } from '@purify/proto';
import { ErrorCode, PurifyError, validate } from '@purify/runtime';
import { ModelRegistry, RegistryError } from '@purify/artifacts';
import { openDataset, type Dataset } from '@purify/imaging';
import { AdaptationConfigError, declaredClasses, Method, resolveHyperparameters, type AdaptationHyperparameters, type TargetLoss as AdaptationTargetLoss } from '@purify/adaptation';

const METHOD_OF: Readonly<Record<number, Method>> = {
  [WireMethod.METHOD_SOURCE_ONLY]: Method.SourceOnly,
  [WireMethod.METHOD_NAIVE]: Method.Naive,
  [WireMethod.METHOD_CONFIDENCE]: Method.Confidence,
  [WireMethod.METHOD_ENTROPY]: Method.Entropy,
  [WireMethod.METHOD_CONSENSUS]: Method.Consensus,
  [WireMethod.METHOD_RULE]: Method.Rule,
  [WireMethod.METHOD_RL]: Method.Rl,
  [WireMethod.METHOD_ORACLE]: Method.Oracle,
  [WireMethod.METHOD_CBST]: Method.Cbst,
};

/** The proto method → the library's method name. */
export function methodOf(m: WireMethod): Method {
  const method = METHOD_OF[m];
  if (method === undefined) {
    throw validate.invalid('spec.method', `must be one of ${Object.keys(WireMethod).filter((k) => k.startsWith('METHOD_') && k !== 'METHOD_UNSPECIFIED').join(', ')}`, m);
  }
  return method;
}

/** The library's method name → the proto enum. */
export function wireMethodOf(m: Method): WireMethod {
  const found = Object.entries(METHOD_OF).find(([, v]) => v === m);
  return Number(found?.[0] ?? 0);
}

export const RELIABILITY_KEYS = ['patch_size', 'stride', 'border_mode', 'split_by_class', 'flip_view', 'appearance_view', 'seed', 'patch_batch_size'] as const;

export interface CheckedSpec {
  readonly method: Method;
  readonly hyperparameters: AdaptationHyperparameters;
  readonly imageSizeYx: readonly [number, number] | undefined;
}

function hyperparametersOf(spec: JobSpec, method: Method): AdaptationHyperparameters {
  const h = spec.hyperparameters;
  try {
    return resolveHyperparameters(method, {
      rounds: h?.rounds,
      stepsPerRound: h?.stepsPerRound,
      batchSize: h?.batchSize,
      learningRate: h?.learningRate,
      targetWeight: h?.targetWeight,
      emaDecay: h?.emaDecay,
      threshold: h?.threshold,
      pixelGate: h?.pixelGate,
      keptPortionStart: h?.keptPortionStart,
      keptPortionEnd: h?.keptPortionEnd,
    });
  } catch (err) {
    // The library names `hyperparameters.<field>`; the client sees it under `spec.`.
    if (err instanceof AdaptationConfigError) throw new PurifyError(ErrorCode.InvalidArgument, err.message.replace(`\`${err.field}\``, `\`spec.${err.field}\``), { cause: err });
    throw err;
  }
}

/** Opens a dataset named by the spec; returns its declared classes as `index:name` text ('' when it declares none). */
function datasetField(path: string | undefined, field: string): string {
  const p = validate.nonEmptyString(path ?? '', `${field}.path`, 4096);
  if (!existsSync(p)) throw validate.invalid(`${field}.path`, 'must name an existing dataset folder', p);
  let dataset: Dataset;
  try {
    dataset = openDataset(p);
  } catch (err) {
    throw validate.invalid(`${field}.path`, `must be a dataset folder (${(err as Error).message})`, p);
  }
  try {
    return (declaredClasses(dataset) ?? []).map((c) => `${c.index}:${c.name}`).join(', ');
  } catch (err) {
    throw validate.invalid(`${field}.path`, `must declare its classes as 0..K−1 (${(err as Error).message})`, p);
  }
}

/** Validates a spec (see the module comment); `artifactsDir` holds the model registry for `init_model`. */
export function checkSpec(spec: JobSpec, artifactsDir: string): CheckedSpec {
  const method = methodOf(spec.method);
  const sourceClasses = datasetField(validate.required(spec.source, 'spec.source').path, 'spec.source');
  if (sourceClasses === '') throw validate.invalid('spec.source.path', 'must be a labelled dataset (dataset.json with "labels")', spec.source!.path);
  if (method !== Method.SourceOnly || spec.target !== undefined) {
    const targetClasses = datasetField(validate.required(spec.target, 'spec.target').path, 'spec.target');
    if (targetClasses !== '' && targetClasses !== sourceClasses) {
      throw validate.invalid('spec.target', `must declare the source's classes [${sourceClasses}] (or none)`, `[${targetClasses}]`);
    }
  }
  if (spec.oracleLabels !== undefined && method !== Method.Oracle) {
    throw validate.invalid('spec.oracle_labels', `may only be given for METHOD_ORACLE (target labels never reach the other methods); method is METHOD_${method.toUpperCase().replace('-', '_')}`, spec.oracleLabels.path);
  }
  if (method === Method.Oracle) {
    const p = validate.nonEmptyString(validate.required(spec.oracleLabels, 'spec.oracle_labels').path, 'spec.oracle_labels.path', 4096);
    if (!existsSync(p)) throw validate.invalid('spec.oracle_labels.path', 'must name an existing folder of label files', p);
  }
  if (spec.agentTarget !== undefined && method !== Method.Rl) throw validate.invalid(`spec.${spec.agentTarget.$case}`, 'is only used by METHOD_RL', method);
  if (spec.agentTarget?.$case === 'policy') validate.policyRef(spec.agentTarget.policy, 'spec.policy');
  if (spec.agentTarget?.$case === 'experiment') validate.identifier(spec.agentTarget.experiment, 'spec.experiment');
  const ablation = spec.rlAblation ?? RlAblation.RL_ABLATION_NONE;
  if (!Object.values(RlAblation).includes(ablation) || ablation === RlAblation.UNRECOGNIZED) {
    throw validate.invalid('spec.rl_ablation', `must be one of ${Object.keys(RlAblation).filter((k) => k.startsWith('RL_ABLATION_')).join(', ')}`, ablation);
  }
  if (ablation !== RlAblation.RL_ABLATION_NONE && method !== Method.Rl) throw validate.invalid('spec.rl_ablation', 'is only used by METHOD_RL', RlAblation[ablation]);
  checkPolicyHandoff(spec, method, ablation);
  if (spec.outputModel !== '') validate.identifier(spec.outputModel, 'spec.output_model');
  if (spec.initModel !== undefined && spec.initModel.name !== '') {
    validate.identifier(spec.initModel.name, 'spec.init_model.name');
    try {
      const { meta } = new ModelRegistry(resolve(artifactsDir)).get(spec.initModel.name, spec.initModel.version);
      const modelClasses = meta.classes.map((c) => `${c.index}:${c.name}`).join(', ');
      if (modelClasses !== sourceClasses) {
        throw validate.invalid('spec.init_model', `must have the source's classes [${sourceClasses}]; model ${meta.name}:${meta.version} has`, `[${modelClasses}]`);
      }
    } catch (err) {
      if (err instanceof RegistryError) throw validate.invalid('spec.init_model', `must name a model version in the registry (${err.message})`, `${spec.initModel.name}:${spec.initModel.version}`);
      throw err;
    }
  }
  const targetLoss = spec.hyperparameters?.targetLoss ?? TargetLoss.TARGET_LOSS_CLASS_BALANCED;
  if (!(targetLoss in TARGET_LOSS_OF)) {
    throw validate.invalid('spec.hyperparameters.target_loss', `must be one of ${Object.keys(TargetLoss).filter((k) => k.startsWith('TARGET_LOSS_')).join(', ')}`, targetLoss);
  }
  if (targetLoss !== TargetLoss.TARGET_LOSS_CLASS_BALANCED && method !== Method.Cbst && method !== Method.Rule && method !== Method.Rl) {
    throw validate.invalid('spec.hyperparameters.target_loss', 'is only used by METHOD_CBST, METHOD_RULE and METHOD_RL (the others weigh every pixel alike)', TargetLoss[targetLoss]);
  }
  const hyperparameters = hyperparametersOf(spec, method);
  const size = spec.hyperparameters?.imageSizeYx ?? [];
  if (size.length !== 0 && (size.length !== 2 || size.some((d) => !Number.isInteger(d) || d < 8 || d > 4096 || d % 8 !== 0))) {
    throw validate.invalid('spec.hyperparameters.image_size_yx', 'must be empty or two multiples of 8 in [8, 4096] ([y, x] pixels)', [...size]);
  }
  for (const [k, v] of Object.entries(spec.reliability)) {
    if (!(RELIABILITY_KEYS as readonly string[]).includes(k)) throw validate.invalid(`spec.reliability["${k}"]`, `must be one of ${RELIABILITY_KEYS.join(', ')}`, k);
    const numeric = ['patch_size', 'stride', 'seed', 'patch_batch_size'].includes(k);
    if (numeric && !/^\d+$/.test(v)) throw validate.invalid(`spec.reliability["${k}"]`, 'must be a non-negative integer', v);
    if (!numeric && k !== 'border_mode' && v !== 'true' && v !== 'false') throw validate.invalid(`spec.reliability["${k}"]`, 'must be "true" or "false"', v);
    if (k === 'border_mode' && v !== 'shift' && v !== 'pad') throw validate.invalid(`spec.reliability["${k}"]`, 'must be "shift" or "pad"', v);
  }
  return { method, hyperparameters, imageSizeYx: size.length === 2 ? [size[0]!, size[1]!] : undefined };
}

/** `promote_policy` / `freeze_policy`: METHOD_RL only, and only where a policy decides (and, frozen, is not trained). */
function checkPolicyHandoff(spec: JobSpec, method: Method, ablation: RlAblation): void {
  if (spec.promotePolicy && method !== Method.Rl) throw validate.invalid('spec.promote_policy', 'is only used by METHOD_RL', method);
  if (spec.freezePolicy && method !== Method.Rl) throw validate.invalid('spec.freeze_policy', 'is only used by METHOD_RL', method);
  if (spec.promotePolicy && ablation === RlAblation.RL_ABLATION_RANDOM_POLICY) {
    throw validate.invalid('spec.promote_policy', 'needs a policy to promote; RL_ABLATION_RANDOM_POLICY asks no policy', 'RL_ABLATION_RANDOM_POLICY');
  }
  if (spec.freezePolicy) {
    const clash = [
      ...(spec.simulatedShiftPretraining ? ['simulated_shift_pretraining'] : []),
      ...(spec.onlineFinetuning ? ['online_finetuning'] : []),
      ...(ablation !== RlAblation.RL_ABLATION_NONE ? [`rl_ablation ${RlAblation[ablation]}`] : []),
    ];
    if (clash.length > 0) throw validate.invalid('spec.freeze_policy', 'acts with the policy as it is and cannot be combined with training it or with an ablation', clash.join(', '));
  }
}

const TARGET_LOSS_OF: Readonly<Record<number, AdaptationTargetLoss>> = {
  [TargetLoss.TARGET_LOSS_CLASS_BALANCED]: 'class-balanced',
  [TargetLoss.TARGET_LOSS_UNIFORM]: 'uniform',
  [TargetLoss.TARGET_LOSS_CLASS_MASS]: 'class-mass',
};

/** The loop's target loss of a spec's `target_loss` (already checked). */
export function targetLossOf(t: TargetLoss | undefined): AdaptationTargetLoss {
  return TARGET_LOSS_OF[t ?? TargetLoss.TARGET_LOSS_CLASS_BALANCED] ?? 'class-balanced';
}

/** The loop's RL settings of a spec's `rl_ablation` (already checked by the spec validation). */
export function rlAblationSettings(ablation: RlAblation | undefined): { policy: 'learned' | 'untrained' | 'random'; observedFeatures: 'all' | 'confidence' } {
  switch (ablation) {
    case RlAblation.RL_ABLATION_UNTRAINED_POLICY:
      return { policy: 'untrained', observedFeatures: 'all' };
    case RlAblation.RL_ABLATION_RANDOM_POLICY:
      return { policy: 'random', observedFeatures: 'all' };
    case RlAblation.RL_ABLATION_CONFIDENCE_FEATURES:
      return { policy: 'learned', observedFeatures: 'confidence' };
    default:
      return { policy: 'learned', observedFeatures: 'all' };
  }
}
