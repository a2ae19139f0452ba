import { execFileSync } from 'node:child_process';
import { classBalancedWeights, classGate, classMassWeights, classThresholds, keptPortion } from './curriculum';
import { AdaptationConfigError } from './errors';
import { regionPixelWeights } from './weighting';

describe('class-balanced curriculum (CBST)', () => {
  it.each([
    // [round, rounds, start, end, expected]: linear from start (first round) to end (last round)
    [0, 4, 0.2, 0.8, 0.2],
    [1, 4, 0.2, 0.8, 0.4],
    [3, 4, 0.2, 0.8, 0.8],
    [0, 1, 0.2, 0.8, 0.8], // a single round keeps the final portion
    [1, 2, 0.5, 0.5, 0.5],
  ])('kept portion of round %d of %d (%d → %d) is %d', (round, rounds, start, end, want) => {
    expect(keptPortion(round, rounds, start, end)).toBeCloseTo(want, 12);
  });

  it('per-class thresholds are the (1 − portion) quantiles of each class’s own confidences (numpy.quantile, linear)', () => {
    // Two volumes, three classes; class 2 is rare and unsure, class 0 common and sure.
    const labels = [Uint8Array.from([0, 0, 0, 1, 1, 2, 0, 0]), Uint8Array.from([0, 1, 1, 1, 2, 0, 0])];
    const probs = [Float32Array.from([0.99, 0.98, 0.97, 0.8, 0.7, 0.55, 0.999, 0.9]), Float32Array.from([0.95, 0.6, 0.9, 0.85, 0.5, 0.96, 0.995])];
    for (const portion of [0.2, 0.5, 0.8, 1]) {
      const got = classThresholds(probs, labels, 3, portion);
      // Test oracle: Debian's numpy (CI installs python3-numpy).
      const want = JSON.parse(
        execFileSync('/usr/bin/python3', [
          '-c',
          `import sys, json, numpy as np
labels = np.concatenate([np.array(l) for l in json.loads(sys.argv[1])])
probs = np.concatenate([np.array(p, dtype=np.float32) for p in json.loads(sys.argv[2])])
print(json.dumps([float(np.quantile(probs[labels == c], 1 - float(sys.argv[3]))) for c in range(3)]))`,
          JSON.stringify(labels.map((l) => [...l])),
          JSON.stringify(probs.map((p) => [...p])),
          String(portion),
        ], { encoding: 'utf8' }),
      ) as number[];
      [...got].forEach((t, c) => expect(t).toBeCloseTo(want[c]!, 6));
      // Each class keeps (at least) its portion: the rare unsure class 2 is not wiped out by a global 0.968.
      for (let c = 0; c < 3; c++) {
        const conf = probs.flatMap((p, v) => [...p].filter((_, i) => labels[v]![i] === c));
        const kept = conf.filter((x) => x >= got[c]!).length;
        expect(kept).toBeGreaterThanOrEqual(Math.floor(portion * conf.length));
      }
    }
    // A class nobody predicts keeps nothing.
    expect(classThresholds([Float32Array.from([0.9])], [Uint8Array.from([0])], 2, 0.5)[1]).toBe(Number.POSITIVE_INFINITY);
  });

  it.each([
    // [case, thresholds per class, max-probability per pixel, expected weights] — pixels labelled [0, 1, 1, 0] in regions [0, 1, 1, 0] weighted 0.2, 0.7
    ['a fixed DAFormer gate (every class 0.968): pixels under it drop out', [0.968, 0.968], [0.99, 0.969, 0.9679, 0.5], [0.2, 0.7, 0, 0]],
    ['a gate at 1/K keeps every pixel', [0.5, 0.5], [0.99, 0.968, 0.9679, 0.5], [0.2, 0.7, 0.7, 0.2]],
    ['per-class thresholds: class 1 needs only 0.6, class 0 needs 0.95', [0.95, 0.6], [0.99, 0.65, 0.55, 0.9], [0.2, 0.7, 0, 0]],
    ['NaN confidence is never trusted', [0.5, 0.5], [Number.NaN, 0.9, 0.9, 0.9], [0, 0.7, 0.7, 0.2]],
  ])('gated region weights: %s', (_name, thresholds, maxProb, want) => {
    const mask = classGate(Float32Array.from(maxProb), Uint8Array.from([0, 1, 1, 0]), Float32Array.from(thresholds));
    const w = regionPixelWeights(Float32Array.from([0.2, 0.7]), Int32Array.from([0, 1, 1, 0]));
    [...w].forEach((x, i) => expect(mask[i]! * x).toBeCloseTo(want[i]!, 6));
  });

  it('per-class loss normalisation: Σ w′·CE / Σ w′ is the mean over classes of each class’s weighted mean CE (hand example)', () => {
    // 6 pixels: background ×4 (weights 1, 1, 1, 0.5; CE 0.1, 0.2, 0.1, 0.4), organ ×2 (weights 1, 0.5; CE 2, 1).
    // Background weighted mean CE = (0.1 + 0.2 + 0.1 + 0.2)/3.5 = 0.6/3.5 = 0.171429; organ = (2 + 0.5)/1.5 = 1.666667;
    // class mean = 0.919048. The plain weighted mean is (0.6 + 2.5)/5 = 0.62 — dominated by the background.
    const labels = Int32Array.from([0, 0, 0, 0, 1, 1]);
    const weights = Float32Array.from([1, 1, 1, 0.5, 1, 0.5]);
    const ce = [0.1, 0.2, 0.1, 0.4, 2, 1];
    const w = classBalancedWeights(labels, weights, 3);
    const sum = [...w].reduce((a, b) => a + b, 0);
    expect(sum).toBeCloseTo(1, 6);
    expect([...w].reduce((a, x, i) => a + x * ce[i]!, 0) / sum).toBeCloseTo(0.919048, 5);
    expect(Math.max(...w)).toBeLessThanOrEqual(1);
    // All weights 0 stay 0.
    expect([...classBalancedWeights(labels, new Float32Array(6), 3)]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('class-mass weights: each class keeps its gated mass, region weights only redistribute it within the class (hand example)', () => {
    // Volume A: labels 0 0 1 1, gate 1 1 1 0, weights 1 .5 .5 0; volume B: labels 1 0 1 2, gate 1 1 1 1, weights 1 1 0 0.
    // Gated pixels and weight sums: class 0 — A0 A1 B1, 3 pixels, 2.5 → factor 1.2; class 1 — A2 B0 B2, 3 pixels, 1.5 → 2;
    // class 2 — B3, weight 0 → 0. Divided by the largest factor (2): A .6 .3 .5 0, B 1 .6 0 0.
    const weights = [Float32Array.from([1, 0.5, 0.5, 0]), Float32Array.from([1, 1, 0, 0])];
    classMassWeights(weights, [Uint8Array.from([0, 0, 1, 1]), Uint8Array.from([1, 0, 1, 2])], [Uint8Array.from([1, 1, 1, 0]), Uint8Array.from([1, 1, 1, 1])], 3);
    expect(weights.map((w) => [...w].map((x) => Number(x.toFixed(6))))).toEqual([[0.6, 0.3, 0.5, 0], [1, 0.6, 0, 0]]);
    // Class totals are now proportional to the gated pixel counts (3 : 3), whatever the purifier removed.
    const total = (c: number): number => [0, 1].reduce((a, v) => a + [0, 1, 2, 3].reduce((b, i) => b + ([[0, 0, 1, 1], [1, 0, 1, 2]][v]![i] === c ? weights[v]![i]! : 0), 0), 0);
    expect(total(0)).toBeCloseTo(total(1), 6);
    // Nothing weighted: nothing changes.
    const zero = [new Float32Array(2)];
    classMassWeights(zero, [Uint8Array.from([0, 1])], [Uint8Array.from([1, 1])], 2);
    expect([...zero[0]!]).toEqual([0, 0]);
  });

  it.each([
    ['class-mass maps of different counts', () => classMassWeights([new Float32Array(1)], [], [], 2), '1 weight maps for 0 label maps and 0 gates'],
    ['a kept portion of 0', () => classThresholds([], [], 2, 0), 'the kept portion must be in (0, 1], got 0'],
    ['a label outside the classes', () => classThresholds([Float32Array.from([0.9])], [Uint8Array.from([3])], 2, 0.5), 'volume 0: label 3 at voxel 0 is not a class in [0, 1]'],
    ['a round past the last', () => keptPortion(2, 2, 0.2, 0.8), 'round must be an integer in [0, 1], got 2'],
    ['weights of another size', () => classBalancedWeights(Int32Array.from([0, 1]), new Float32Array(3), 2), '3 weights for 2 labels'],
  ])('refuses %s', (_name, call, message) => {
    expect(call).toThrow(AdaptationConfigError);
    expect(call).toThrow(message);
  });
});
