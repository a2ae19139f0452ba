import type { ActionSpace, PpoConfig } from '@purify/rl';
import { invalid } from './errors';
import type { AgentPolicySpec, PolicyRef } from './types';

/**
 * Checks applied at the registry's edge. Field names are the API's (snake_case
 * proto names) so the service can pass the messages through unchanged.
 */

// Type-only import of @purify/rl keeps TensorFlow.js out of this package's load path.
const DISCRETE: ActionSpace = 'discrete';
const BETA: ActionSpace = 'beta';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A name usable as a folder: letters, digits, `.`, `_`, `-`, at most 128, no `..`. */
export function checkName(value: string, field: string): string {
  if (!NAME.test(value) || value.includes('..')) {
    throw invalid(field, 'must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters)', value);
  }
  return value;
}

export function checkRef(ref: PolicyRef, field: string): PolicyRef {
  checkName(ref.name, `${field}.name`);
  if (!Number.isSafeInteger(ref.version) || ref.version < 0) throw invalid(`${field}.version`, 'must be an integer >= 0', ref.version);
  return ref;
}

export function formatRef(ref: PolicyRef): string {
  return `${ref.name}:${ref.version}`;
}

const MAX_FEATURES = 4096;
const MAX_HIDDEN = 4096;

/** Validates a spec and returns a normalised copy (Beta specs carry no levels). */
export function checkSpec(spec: AgentPolicySpec, field = 'spec'): AgentPolicySpec {
  if (spec.actionSpace !== DISCRETE && spec.actionSpace !== BETA) {
    throw invalid(`${field}.action_space`, `must be ${DISCRETE} or ${BETA}`, spec.actionSpace);
  }
  const levels = [...spec.weightLevels];
  if (spec.actionSpace === DISCRETE) {
    if (levels.length < 2) throw invalid(`${field}.weight_levels`, 'must list at least 2 weight levels for the discrete space', levels);
    levels.forEach((w, i) => {
      if (!Number.isFinite(w) || w < 0 || w > 1) throw invalid(`${field}.weight_levels[${i}]`, 'must be in [0, 1]', w);
      const prev = levels[i - 1];
      if (prev !== undefined && !(w > prev)) throw invalid(`${field}.weight_levels`, 'must be strictly ascending', levels);
    });
  } else if (levels.length > 0) {
    throw invalid(`${field}.weight_levels`, 'must be empty for the beta space', levels);
  }
  if (spec.hiddenUnits.length === 0) throw invalid(`${field}.hidden_units`, 'must list at least one hidden layer width', [...spec.hiddenUnits]);
  spec.hiddenUnits.forEach((h, i) => {
    if (!Number.isSafeInteger(h) || h < 1 || h > MAX_HIDDEN) throw invalid(`${field}.hidden_units[${i}]`, `must be an integer in [1, ${MAX_HIDDEN}]`, h);
  });
  if (!Number.isSafeInteger(spec.numFeatures) || spec.numFeatures < 1 || spec.numFeatures > MAX_FEATURES) {
    throw invalid(`${field}.num_features`, `must be an integer in [1, ${MAX_FEATURES}]`, spec.numFeatures);
  }
  if (!Number.isSafeInteger(spec.seed) || spec.seed < 0 || spec.seed > 0xffffffff) {
    throw invalid(`${field}.seed`, 'must be an integer in [0, 4294967295]', spec.seed);
  }
  if (spec.featureSchemaVersion.length === 0 || spec.featureSchemaVersion.length > 64 || /[\u0000-\u001f]/.test(spec.featureSchemaVersion)) {
    throw invalid(`${field}.feature_schema_version`, 'must be a non-empty string of at most 64 printable characters', spec.featureSchemaVersion);
  }
  return {
    actionSpace: spec.actionSpace,
    weightLevels: levels,
    hiddenUnits: [...spec.hiddenUnits],
    numFeatures: spec.numFeatures,
    seed: spec.seed,
    featureSchemaVersion: spec.featureSchemaVersion,
  };
}

/** True when two specs describe the same network (feature schema aside). */
export function sameNetwork(a: Omit<AgentPolicySpec, 'featureSchemaVersion'>, b: Omit<AgentPolicySpec, 'featureSchemaVersion'>): boolean {
  return (
    a.actionSpace === b.actionSpace &&
    a.numFeatures === b.numFeatures &&
    a.weightLevels.length === b.weightLevels.length &&
    a.weightLevels.every((w, i) => Math.abs(w - (b.weightLevels[i] ?? Number.NaN)) < 1e-6) &&
    a.hiddenUnits.length === b.hiddenUnits.length &&
    a.hiddenUnits.every((h, i) => h === b.hiddenUnits[i])
  );
}

/** [field, lower bound, upper bound, lower bound inclusive, integer] per PPO setting. */
const PPO_RULES: readonly [keyof PpoConfig, string, number, number, boolean, boolean][] = [
  ['learningRate', 'learning_rate', 0, 1, false, false],
  ['clipRatio', 'clip_ratio', 0, 1, false, false],
  ['gamma', 'gamma', 0, 1, true, false],
  ['gaeLambda', 'gae_lambda', 0, 1, true, false],
  ['entropyCoef', 'entropy_coef', 0, 100, true, false],
  ['valueCoef', 'value_coef', 0, 100, true, false],
  ['epochs', 'epochs', 1, 1000, true, true],
  ['minibatchSize', 'minibatch_size', 1, 1_000_000, true, true],
  ['targetKl', 'target_kl', 0, 100, true, false],
  ['maxGradNorm', 'max_grad_norm', 0, 1e6, true, false],
];

/** Defaults overlaid with `overrides` (undefined fields keep the default), each checked. */
export function checkPpoConfig(defaults: PpoConfig, overrides: Partial<PpoConfig> | undefined, field = 'hyperparameters'): PpoConfig {
  const merged: Record<string, number> = { ...defaults };
  for (const [key, wire, lo, hi, loInclusive, integer] of PPO_RULES) {
    const v = overrides?.[key];
    if (v === undefined) continue;
    const ok = Number.isFinite(v) && (loInclusive ? v >= lo : v > lo) && v <= hi && (!integer || Number.isInteger(v));
    if (!ok) throw invalid(`${field}.${wire}`, `must be ${integer ? 'an integer' : 'a number'} in ${loInclusive ? '[' : '('}${lo}, ${hi}]`, v);
    merged[key] = v;
  }
  return merged as unknown as PpoConfig;
}
