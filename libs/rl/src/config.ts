import { RlError, show } from './errors';
import { ActionSpace, type PolicySpec, type PpoConfig } from './types';

/**
 * Defaults in the range commonly used for PPO on small MLPs (CleanRL /
 * Stable-Baselines3), with a lower KL target suited to many parallel regions
 * per update.
 */
export const DEFAULT_PPO_CONFIG: Readonly<Required<PpoConfig>> = Object.freeze({
  learningRate: 3e-4,
  clipRatio: 0.2,
  gamma: 0.99,
  gaeLambda: 0.95,
  entropyCoef: 0.01,
  valueCoef: 0.5,
  epochs: 10,
  minibatchSize: 256,
  targetKl: 0.02,
  maxGradNorm: 0.5,
  valueClip: 0,
});

type Check = (v: number) => boolean;
const RULES: Readonly<Record<keyof PpoConfig, { ok: Check; want: string }>> = {
  learningRate: { ok: (v) => Number.isFinite(v) && v > 0, want: 'a finite number > 0' },
  clipRatio: { ok: (v) => Number.isFinite(v) && v > 0, want: 'a finite number > 0' },
  gamma: { ok: (v) => v >= 0 && v <= 1, want: 'a number in [0, 1]' },
  gaeLambda: { ok: (v) => v >= 0 && v <= 1, want: 'a number in [0, 1]' },
  entropyCoef: { ok: (v) => Number.isFinite(v) && v >= 0, want: 'a finite number >= 0' },
  valueCoef: { ok: (v) => Number.isFinite(v) && v >= 0, want: 'a finite number >= 0' },
  epochs: { ok: (v) => Number.isInteger(v) && v >= 1, want: 'an integer >= 1' },
  minibatchSize: { ok: (v) => Number.isInteger(v) && v >= 1, want: 'an integer >= 1' },
  targetKl: { ok: (v) => Number.isFinite(v) && v >= 0, want: 'a finite number >= 0 (0 = no early stop)' },
  maxGradNorm: { ok: (v) => Number.isFinite(v) && v >= 0, want: 'a finite number >= 0 (0 = no clipping)' },
  valueClip: { ok: (v) => Number.isFinite(v) && v >= 0, want: 'a finite number >= 0 (0 = unclipped value loss)' },
};

/**
 * Validates a PPO configuration at the edge: copies it, fills absent fields
 * from {@link DEFAULT_PPO_CONFIG}, and throws {@link RlError} naming the first
 * bad field and the value received (unknown fields are refused too, so a typo
 * does not silently fall back to a default).
 */
export function validatePpoConfig(config: Partial<PpoConfig>): Required<PpoConfig> {
  if (typeof config !== 'object' || config === null) throw new RlError(`PpoConfig must be an object, got ${show(config)}`);
  for (const key of Object.keys(config)) {
    if (!(key in RULES)) throw new RlError(`PpoConfig.${key} is not a PPO setting (known: ${Object.keys(RULES).join(', ')})`);
  }
  const out: Record<string, number> = { ...DEFAULT_PPO_CONFIG };
  for (const [key, rule] of Object.entries(RULES)) {
    const value: unknown = (config as Record<string, unknown>)[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !rule.ok(value)) throw new RlError(`PpoConfig.${key} must be ${rule.want}, got ${show(value)}`);
    out[key] = value;
  }
  return Object.freeze(out) as unknown as Required<PpoConfig>;
}

/**
 * Validates a policy spec (throws {@link RlError} naming the field and the
 * value) and returns a frozen copy.
 */
export function validatePolicySpec(spec: PolicySpec): PolicySpec {
  if (typeof spec !== 'object' || spec === null) throw new RlError(`PolicySpec must be an object, got ${show(spec)}`);
  const spaces = Object.values(ActionSpace) as string[];
  if (!spaces.includes(spec.actionSpace)) throw new RlError(`PolicySpec.actionSpace must be one of ${spaces.map((s) => `"${s}"`).join(', ')}, got ${show(spec.actionSpace)}`);
  if (!Number.isInteger(spec.numFeatures) || spec.numFeatures < 1) throw new RlError(`PolicySpec.numFeatures must be an integer >= 1, got ${show(spec.numFeatures)}`);
  if (!Array.isArray(spec.hiddenUnits) || !spec.hiddenUnits.every((u) => Number.isInteger(u) && u >= 1)) {
    throw new RlError(`PolicySpec.hiddenUnits must be an array of integers >= 1, got ${show(spec.hiddenUnits)}`);
  }
  if (!Number.isSafeInteger(spec.seed)) throw new RlError(`PolicySpec.seed must be a safe integer, got ${show(spec.seed)}`);
  const levels = spec.weightLevels;
  if (!Array.isArray(levels)) throw new RlError(`PolicySpec.weightLevels must be an array, got ${show(levels)}`);
  if (spec.actionSpace === ActionSpace.Discrete) {
    const ascending = levels.every((w, i) => typeof w === 'number' && w >= 0 && w <= 1 && (i === 0 || w > levels[i - 1]!));
    if (levels.length < 2 || !ascending) {
      throw new RlError(`PolicySpec.weightLevels must hold >= 2 strictly ascending weights in [0, 1] for a discrete policy, got ${show(levels)}`);
    }
  }
  return Object.freeze({
    actionSpace: spec.actionSpace,
    weightLevels: Object.freeze(Array.from(levels as readonly number[])),
    hiddenUnits: Object.freeze(Array.from(spec.hiddenUnits)),
    numFeatures: spec.numFeatures,
    seed: spec.seed,
  });
}
