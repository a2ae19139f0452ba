import { MetricsError } from './errors';
import { percentile } from './percentile';

describe('percentile (type 7, linear between order statistics)', () => {
  it.each([
    // [values, q, expected: h = (n − 1)·q/100, a[⌊h⌋] + frac(h)·(a[⌊h⌋+1] − a[⌊h⌋])]
    [[1, 2, 3, 4], 95, 3.85], // h = 2.85 → 3 + 0.85·1
    [[4, 1, 3, 2], 95, 3.85], // order of input does not matter
    [[1, 2, 3, 4], 50, 2.5], // h = 1.5
    [[1, 2, 3, 4], 0, 1],
    [[1, 2, 3, 4], 100, 4],
    [[0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5], 95, 0.5], // h = 6.65 → a[6] = a[7] = 0.5
    [[0, 2], 95, 1.9], // h = 0.95
    [[7], 95, 7],
    [[], 95, NaN],
  ])('%p at %p → %p', (values, q, expected) => {
    const got = percentile(values, q);
    if (Number.isNaN(expected)) expect(got).toBeNaN();
    else expect(got).toBeCloseTo(expected, 12);
  });

  it.each([101, -1, NaN])('rejects q = %p', (q) => {
    expect(() => percentile([1], q)).toThrow(MetricsError);
    expect(() => percentile([1], q)).toThrow(`percentile must be in [0, 100], got ${q}`);
  });
});
