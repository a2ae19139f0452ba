import { Rng } from './rng';

describe('Rng', () => {
  it('is reproducible: same seed and stream → same sequence; other stream or seed → different', () => {
    const draw = (r: Rng) => Array.from({ length: 8 }, () => r.nextUint32());
    const a = draw(Rng.fromSeed(42, 'act'));
    expect(draw(Rng.fromSeed(42, 'act'))).toEqual(a);
    expect(draw(Rng.fromSeed(42, 'init'))).not.toEqual(a);
    expect(draw(Rng.fromSeed(43, 'act'))).not.toEqual(a);
    // A seed above 2^32 differs from its low 32 bits.
    expect(draw(Rng.fromSeed(2 ** 32 + 42, 'act'))).not.toEqual(a);
  });

  it('restores exactly from its state, and fork() does not advance the parent', () => {
    const r = Rng.fromSeed(7, 's');
    r.uniform();
    const copy = Rng.fromState(r.state);
    r.fork('x');
    expect(Array.from({ length: 5 }, () => r.uniform())).toEqual(Array.from({ length: 5 }, () => copy.uniform()));
  });

  it('uniform() lies in [0, 1) with mean ≈ 1/2 and variance ≈ 1/12 over 20 000 draws', () => {
    const r = Rng.fromSeed(1, 'u');
    const xs = Array.from({ length: 20_000 }, () => r.uniform());
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    // standard error of the mean: √(1/12/20000) ≈ 0.002
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.003);
  });

  it.each([
    // [α, β]: Beta mean α/(α+β), variance αβ/((α+β)²(α+β+1)); 20 000 samples, tolerance ≈ 5 standard errors
    [1.693, 1.693],
    [2, 5],
    [0.5, 0.5],
    [30, 1.2],
  ])('beta(%p, %p) has the Beta mean and variance', (a, b) => {
    const r = Rng.fromSeed(3, `beta-${a}-${b}`);
    const xs = Array.from({ length: 20_000 }, () => r.beta(a, b));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
    const wantMean = a / (a + b);
    const wantVar = (a * b) / ((a + b) ** 2 * (a + b + 1));
    expect(xs.every((x) => x >= 0 && x <= 1)).toBe(true);
    expect(Math.abs(mean - wantMean)).toBeLessThan(5 * Math.sqrt(wantVar / xs.length));
    expect(Math.abs(variance / wantVar - 1)).toBeLessThan(0.05);
  });

  it('permutation(n) holds each index once', () => {
    const p = Rng.fromSeed(5, 'p').permutation(1000);
    expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(p)).not.toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
});
