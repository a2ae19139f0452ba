import { nextSeverity, simulatedShift } from './shift';

describe('nextSeverity', () => {
  it.each([
    { s: 0.5, sim: 0.95, target: 0.9, gain: 4, want: 0.7 }, // pseudo-targets too easy → stronger shift
    { s: 0.5, sim: 0.85, target: 0.9, gain: 4, want: 0.3 }, // too hard → weaker
    { s: 0.5, sim: 0.9, target: 0.9, gain: 4, want: 0.5 },
    { s: 0.9, sim: 1, target: 0.5, gain: 4, want: 1 }, // clamped
    { s: 0.1, sim: 0.2, target: 0.9, gain: 4, want: 0 },
    { s: 0.4, sim: Number.NaN, target: 0.9, gain: 4, want: 0.4 }, // nothing measured → unchanged
    { s: 0.4, sim: 0.9, target: Number.NaN, gain: 4, want: 0.4 },
  ])('s=$s sim=$sim target=$target → $want', ({ s, sim, target, gain, want }) => {
    expect(nextSeverity(s, sim, target, gain)).toBeCloseTo(want, 10);
  });
});

describe('simulatedShift', () => {
  const lo = simulatedShift(0);
  const hi = simulatedShift(1);
  it.each([
    ['pNonMonotonic', lo.pNonMonotonic, hi.pNonMonotonic],
    ['pBlur', lo.pBlur, hi.pBlur],
    ['pNoise', lo.pNoise, hi.pNoise],
    ['biasStrength', lo.biasStrength, hi.biasStrength],
    ['max noise sigma', lo.noiseSigmaRange?.[1], hi.noiseSigmaRange?.[1]],
    ['max gamma', lo.gammaRange?.[1], hi.gammaRange?.[1]],
    ['contrast spread', (lo.contrastRange?.[1] ?? 0) - (lo.contrastRange?.[0] ?? 0), (hi.contrastRange?.[1] ?? 0) - (hi.contrastRange?.[0] ?? 0)],
  ])('%s grows with severity', (_name, a, b) => {
    expect(b as number).toBeGreaterThan(a as number);
  });

  it('clamps the severity to [0, 1] and keeps probabilities in [0, 1]', () => {
    expect(simulatedShift(-3)).toEqual(lo);
    expect(simulatedShift(7)).toEqual(hi);
    for (const o of [lo, simulatedShift(0.5), hi]) {
      for (const p of [o.pCurve, o.pNonMonotonic, o.pGamma, o.pContrast, o.pBias, o.pBlur, o.pNoise]) {
        expect(p).toBeGreaterThanOrEqual(0);
        expect(p).toBeLessThanOrEqual(1);
      }
    }
  });
});
