import { DEFAULT_PPO_CONFIG, validatePolicySpec, validatePpoConfig } from './config';
import { RlError } from './errors';
import type { PolicySpec, PpoConfig } from './types';

describe('validatePpoConfig', () => {
  it('fills absent fields from DEFAULT_PPO_CONFIG and returns a frozen copy', () => {
    const input = { clipRatio: 0.1 };
    const cfg = validatePpoConfig(input);
    expect(cfg).toEqual({ ...DEFAULT_PPO_CONFIG, clipRatio: 0.1 });
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(cfg).not.toBe(input);
  });

  it('accepts the defaults and the edges (γ = 0 and 1, targetKl = maxGradNorm = valueClip = 0)', () => {
    expect(() => validatePpoConfig(DEFAULT_PPO_CONFIG)).not.toThrow();
    expect(() => validatePpoConfig({ gamma: 0, gaeLambda: 1, targetKl: 0, maxGradNorm: 0, valueClip: 0 })).not.toThrow();
  });

  it.each([
    // [field override, expected message]
    [{ clipRatio: 0 }, 'PpoConfig.clipRatio must be a finite number > 0, got 0'],
    [{ clipRatio: -0.2 }, 'PpoConfig.clipRatio must be a finite number > 0, got -0.2'],
    [{ learningRate: Number.NaN }, 'PpoConfig.learningRate must be a finite number > 0, got NaN'],
    [{ gamma: 1.01 }, 'PpoConfig.gamma must be a number in [0, 1], got 1.01'],
    [{ gaeLambda: -0.1 }, 'PpoConfig.gaeLambda must be a number in [0, 1], got -0.1'],
    [{ entropyCoef: -1 }, 'PpoConfig.entropyCoef must be a finite number >= 0, got -1'],
    [{ valueCoef: Infinity }, 'PpoConfig.valueCoef must be a finite number >= 0, got Infinity'],
    [{ epochs: 2.5 }, 'PpoConfig.epochs must be an integer >= 1, got 2.5'],
    [{ minibatchSize: 0 }, 'PpoConfig.minibatchSize must be an integer >= 1, got 0'],
    [{ targetKl: -0.01 }, 'PpoConfig.targetKl must be a finite number >= 0 (0 = no early stop), got -0.01'],
    [{ maxGradNorm: -1 }, 'PpoConfig.maxGradNorm must be a finite number >= 0 (0 = no clipping), got -1'],
    [{ valueClip: -0.2 }, 'PpoConfig.valueClip must be a finite number >= 0 (0 = unclipped value loss), got -0.2'],
    [{ epochs: '4' }, 'PpoConfig.epochs must be an integer >= 1, got "4"'],
    [{ clipratio: 0.2 }, 'PpoConfig.clipratio is not a PPO setting (known: learningRate, clipRatio, gamma, gaeLambda, entropyCoef, valueCoef, epochs, minibatchSize, targetKl, maxGradNorm, valueClip)'],
  ])('refuses %p', (override, message) => {
    expect(() => validatePpoConfig(override as unknown as Partial<PpoConfig>)).toThrow(new RlError(message));
    expect(() => validatePpoConfig(override as unknown as Partial<PpoConfig>)).toThrow(RlError);
  });
});

describe('validatePolicySpec', () => {
  const good: PolicySpec = { actionSpace: 'discrete', weightLevels: [0, 0.25, 0.5, 0.75, 1], hiddenUnits: [64, 64], numFeatures: 16, seed: 1 };

  it('returns a frozen copy; a Beta spec ignores weightLevels', () => {
    const spec = validatePolicySpec(good);
    expect(spec).toEqual(good);
    expect(Object.isFrozen(spec) && Object.isFrozen(spec.hiddenUnits)).toBe(true);
    expect(() => validatePolicySpec({ ...good, actionSpace: 'beta', weightLevels: [] })).not.toThrow();
  });

  it.each([
    [{ actionSpace: 'gaussian' }, 'PolicySpec.actionSpace must be one of "discrete", "beta", got "gaussian"'],
    [{ numFeatures: 0 }, 'PolicySpec.numFeatures must be an integer >= 1, got 0'],
    [{ hiddenUnits: [64, 0] }, 'PolicySpec.hiddenUnits must be an array of integers >= 1, got [64, 0]'],
    [{ seed: 1.5 }, 'PolicySpec.seed must be a safe integer, got 1.5'],
    [{ weightLevels: [0, 0.5, 0.5, 1] }, 'PolicySpec.weightLevels must hold >= 2 strictly ascending weights in [0, 1] for a discrete policy, got [0, 0.5, 0.5, 1]'],
    [{ weightLevels: [0, 1.5] }, 'PolicySpec.weightLevels must hold >= 2 strictly ascending weights in [0, 1] for a discrete policy, got [0, 1.5]'],
    [{ weightLevels: [1] }, 'PolicySpec.weightLevels must hold >= 2 strictly ascending weights in [0, 1] for a discrete policy, got [1]'],
  ])('refuses %p', (override, message) => {
    expect(() => validatePolicySpec({ ...good, ...override } as PolicySpec)).toThrow(new RlError(message));
  });
});
