import { argmaxAt, entropyAt, gaussianWeights, jsDivergenceAt, maxAt, normalizedEntropyAt } from './measures';

describe('per-pixel measures', () => {
  it.each([
    // [case, p, entropy in nats (hand value)]
    ['uniform over 4', [0.25, 0.25, 0.25, 0.25], Math.log(4)],
    ['one-hot', [0, 1, 0], 0],
    ['(0.5, 0.5, 0)', [0.5, 0.5, 0], Math.log(2)],
    ['(0.9, 0.1): −0.9 ln 0.9 − 0.1 ln 0.1 = 0.325083', [0.9, 0.1], 0.3250829733914482],
  ])('entropy of %s', (_name, p, expected) => {
    expect(entropyAt(p, 0, 1, p.length)).toBeCloseTo(expected, 12);
  });

  it('normalises entropy by log K and reads strided layouts', () => {
    // [K=2, n=2] laid out class-first: pixel 1 is (0.5, 0.5) → H/log 2 = 1; pixel 0 one-hot → 0
    const p = [1, 0.5, 0, 0.5];
    expect(normalizedEntropyAt(p, 1, 2, 2)).toBeCloseTo(1, 12);
    expect(normalizedEntropyAt(p, 0, 2, 2)).toBe(0);
    expect(normalizedEntropyAt([1], 0, 1, 1)).toBe(0);
  });

  it.each([
    // [case, p, q, JS in bits (hand value)]
    ['identical', [0.2, 0.8], [0.2, 0.8], 0],
    ['disjoint one-hots: maximum 1 bit', [1, 0], [0, 1], 1],
    // m = (0.5, 0.25, 0.25): ½[1·log2(1/0.5)] + ½[0.5·log2(0.5/0.25) + 0.5·log2(0.5/0.25)] = ½ + ½ = 1 ... per term:
    // KL(p‖m) = log2 2 = 1; KL(q‖m) = 0.5·1 + 0.5·1 = 1 → JS = 1? No: q = (0, 0.5, 0.5), KL(q‖m) = 0.5 log2(0.5/0.25)·2 = 1 → JS = 1
    ['(1,0,0) vs (0,.5,.5): disjoint supports, 1 bit', [1, 0, 0], [0, 0.5, 0.5], 1],
    // p = (0.5, 0.5), q = (1, 0): m = (0.75, 0.25); KL(p‖m) = 0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25) = 0.5(−0.584963) + 0.5(1) = 0.207519;
    // KL(q‖m) = log2(1/0.75) = 0.415037; JS = (0.207519 + 0.415037)/2 = 0.311278
    ['(.5,.5) vs (1,0)', [0.5, 0.5], [1, 0], 0.31127812445913283],
  ])('JS divergence: %s', (_name, p, q, expected) => {
    expect(jsDivergenceAt(p, q, 0, 1, p.length)).toBeCloseTo(expected, 12);
    expect(jsDivergenceAt(q, p, 0, 1, p.length)).toBeCloseTo(expected, 12);
  });

  it('argmax takes the lowest index on ties; max reads the largest', () => {
    expect(argmaxAt([0.4, 0.4, 0.2], 0, 1, 3)).toBe(0);
    expect(argmaxAt([0.1, 0.3, 0.6], 0, 1, 3)).toBe(2);
    expect(maxAt([0.1, 0.3, 0.6], 0, 1, 3)).toBe(0.6);
  });
});

describe('Gaussian stitching weights', () => {
  it('peak 1 at the centre, exp(−d²/2σ²) elsewhere, symmetric', () => {
    // P = 5, σ = 0.25·5 = 1.25, centre (2, 2): w(2, 2) = 1; w(0, 2) = exp(−4/3.125) = 0.278037; w(0, 0) = exp(−8/3.125) = 0.077305
    const w = gaussianWeights(5, 0.25);
    expect(w[2 * 5 + 2]).toBe(1);
    expect(w[0 * 5 + 2]).toBeCloseTo(Math.exp(-4 / 3.125), 14);
    expect(w[0]).toBeCloseTo(Math.exp(-8 / 3.125), 14);
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 5; x++) {
        expect(w[y * 5 + x]).toBe(w[x * 5 + y]);
        expect(w[y * 5 + x]).toBe(w[(4 - y) * 5 + (4 - x)]);
      }
    }
  });

  it('even P: the four centre pixels share the peak 1', () => {
    // P = 4, centre (1.5, 1.5): pixels (1,1), (1,2), (2,1), (2,2) at distance² 0.5
    const w = gaussianWeights(4, 0.25);
    expect([w[5], w[6], w[9], w[10]]).toEqual([1, 1, 1, 1]);
    // corner (0, 0): distance² 4.5 vs 0.5 at the peak, σ = 1 → exp(−(4.5 − 0.5)/2) = exp(−2)
    expect(w[0]).toBeCloseTo(Math.exp(-2), 14);
  });
});
