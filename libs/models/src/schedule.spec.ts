import { ModelConfigError } from './errors';
import { learningRateAt, LrDecay, resolveLrSchedule } from './schedule';

describe('learningRateAt', () => {
  it.each<[string, Parameters<typeof resolveLrSchedule>[0], number, number]>([
    // constant 1e-3 at any step
    ['constant', 1e-3, 0, 1e-3],
    ['constant, late', 1e-3, 10_000, 1e-3],
    // warm-up 4 steps: base·(step+1)/4 → 2.5e-4, 5e-4, 7.5e-4, then 1e-3
    ['warm-up step 0', { baseLr: 1e-3, warmupSteps: 4 }, 0, 2.5e-4],
    ['warm-up step 2', { baseLr: 1e-3, warmupSteps: 4 }, 2, 7.5e-4],
    ['after warm-up (constant)', { baseLr: 1e-3, warmupSteps: 4 }, 4, 1e-3],
    // poly, total 10, power 0.9: step 5 → 1e-3·(1 − 0.5)^0.9 = 1e-3·0.535887
    ['poly midway', { baseLr: 1e-3, decay: LrDecay.Poly, totalSteps: 10 }, 5, 0.5358867312681466e-3],
    ['poly at start', { baseLr: 1e-3, decay: LrDecay.Poly, totalSteps: 10 }, 0, 1e-3],
    ['poly at end → minLr 0', { baseLr: 1e-3, decay: LrDecay.Poly, totalSteps: 10 }, 10, 0],
    // poly with power 1, warm-up 2, total 12, minLr 1e-4: step 7 → p = (7−2)/10 = 0.5 → 1e-4 + 9e-4·0.5 = 5.5e-4
    ['poly power 1 after warm-up', { baseLr: 1e-3, decay: LrDecay.Poly, totalSteps: 12, warmupSteps: 2, power: 1, minLr: 1e-4 }, 7, 5.5e-4],
    // cosine, total 10, minLr 1e-4: step 5 → 1e-4 + 9e-4·(1 + cos(π/2))/2 = 5.5e-4
    ['cosine midway', { baseLr: 1e-3, decay: LrDecay.Cosine, totalSteps: 10, minLr: 1e-4 }, 5, 5.5e-4],
    // cosine step 2 of 8 after 0 warm-up: p = 0.25 → 1e-3·(1 + cos(π/4))/2 = 1e-3·0.853553
    ['cosine quarter', { baseLr: 1e-3, decay: LrDecay.Cosine, totalSteps: 8 }, 2, 0.8535533905932737e-3],
    ['cosine past the end → minLr', { baseLr: 1e-3, decay: LrDecay.Cosine, totalSteps: 10, minLr: 1e-4 }, 50, 1e-4],
  ])('%s', (_name, config, step, expected) => {
    expect(learningRateAt(resolveLrSchedule(config), step)).toBeCloseTo(expected, 12);
  });

  it.each<[Parameters<typeof resolveLrSchedule>[0], string]>([
    [0, 'LrSchedule.baseLr must be a finite number > 0, got 0'],
    [{ baseLr: 1e-3, decay: LrDecay.Poly }, "LrSchedule.totalSteps must be an integer > warmupSteps (0) for 'poly' decay, got 0"],
    [{ baseLr: 1e-3, decay: LrDecay.Cosine, totalSteps: 5, warmupSteps: 5 }, "LrSchedule.totalSteps must be an integer > warmupSteps (5) for 'cosine' decay, got 5"],
    [{ baseLr: 1e-3, warmupSteps: -1 }, 'LrSchedule.warmupSteps must be an integer ≥ 0, got -1'],
    [{ baseLr: 1e-3, minLr: 1e-2 }, 'LrSchedule.minLr must be a number in [0, baseLr = 0.001], got 0.01'],
    [{ baseLr: 1e-3, decay: 'step' as LrDecay }, 'LrSchedule.decay must be one of constant, poly, cosine, got "step"'],
  ])('rejects %j', (config, message) => {
    expect(() => resolveLrSchedule(config)).toThrow(new ModelConfigError(message));
  });
});
