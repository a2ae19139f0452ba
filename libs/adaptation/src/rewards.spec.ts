import { AdaptationConfigError } from './errors';
import { episodicReward, proxyReward, regionAccuracy, regionRewards, signedCorrectness, wrongRegionBalance } from './rewards';

describe('rewards (hand cases)', () => {
  it('region accuracy: fraction of each region’s pixels whose pseudo-label is right', () => {
    // Pseudo [1, 1, 0, 0] vs label [1, 0, 0, 0], regions [0, 0, 1, 1]: region 0 1/2, region 1 2/2; region 2 has no pixels → 1.
    expect([...regionAccuracy([1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], 3)]).toEqual([0.5, 1, 1]);
  });

  it.each([
    // [max-probability per pixel, gate, expected accuracies]; pseudo [1, 1, 0, 0, 2, 2] vs label [1, 0, 0, 1, 2, 0], regions [0, 0, 1, 1, 2, 2]
    // every pixel over the gate: the ungated fractions 1/2, 1/2, 1/2
    [[0.99, 0.99, 0.99, 0.99, 0.99, 0.99], 0.968, [0.5, 0.5, 0.5]],
    // the wrong pixel of region 0 and of region 1 under the gate: both regions right on what is trained (1, 1); region 2 all under: NaN
    [[0.99, 0.5, 0.99, 0.9, 0.2, 0.3], 0.968, [1, 1, Number.NaN]],
    // only the wrong pixels over the gate: 0, 0, 0
    [[0.5, 0.99, 0.5, 0.99, 0.5, 0.99], 0.968, [0, 0, 0]],
    // the gate is inclusive: 0.968 counts
    [[0.968, 0.967, 0.968, 0.968, 0.968, 0.968], 0.968, [1, 0.5, 0.5]],
  ])('gated region accuracy, confidences %j gate %d -> %j', (maxProbability, gate, want) => {
    const got = [...regionAccuracy([1, 1, 0, 0, 2, 2], [1, 0, 0, 1, 2, 0], [0, 0, 1, 1, 2, 2], 3, { mask: maxProbability.map((p) => (p >= gate ? 1 : 0)) })];
    expect(got).toEqual(want);
  });

  it('a region with nothing trained on earns the episodic term only, and is left out of the wrong/right balance', () => {
    expect([...regionRewards(Float32Array.from([1, 0, 1]), Float32Array.from([1, Number.NaN, 0]), { pivot: 0.8, episodic: 0.25 })]).toEqual([1.25, 0.25, -0.75]);
    // one right, one wrong, one NaN: balance 1/1 = 1 (not 2/1 or 1/2)
    expect(wrongRegionBalance([1, 0, Number.NaN], 0.8)).toBe(1);
    expect(wrongRegionBalance([1, 1, 0, Number.NaN, Number.NaN], 0.8)).toBe(2);
  });

  it.each([
    // [accuracy, pivot, expected signed correctness]
    [1, 0.8, 1],
    [0.8, 0.8, 0],
    [0.9, 0.8, 0.5], // (0.9 − 0.8)/0.2
    [0.4, 0.8, -0.5], // (0.4 − 0.8)/0.8
    [0, 0.8, -1],
    [0.75, 0.5, 0.5], // (0.75 − 0.5)/0.5
  ])('signed correctness of accuracy %d with pivot %d is %d', (acc, pivot, want) => {
    expect(signedCorrectness(acc, pivot)).toBeCloseTo(want, 10);
  });

  it('a correct region weighted up earns more than a wrong one weighted up; weighting a wrong one down earns', () => {
    // Regions: correct/up, wrong/up, correct/down, wrong/down, correct/half. s = [1, −1, 1, −1, 1]; 2w − 1 = [1, 1, −1, −1, 0].
    const r = regionRewards(Float32Array.from([1, 1, 0, 0, 0.5]), Float32Array.from([1, 0, 1, 0, 1]), { pivot: 0.8 });
    expect([...r]).toEqual([1, -1, -1, 1, 0]);
    expect(r[0]!).toBeGreaterThan(r[1]!);
    expect(r[3]!).toBeGreaterThan(r[1]!);
  });

  it('wrongScale multiplies only the correctness term of wrong regions', () => {
    // Same regions as above with wrongScale 3: wrong/up −3, wrong/down +3; right regions unchanged; episodic 0.5 added after scaling.
    const r = regionRewards(Float32Array.from([1, 1, 0, 0, 0.5]), Float32Array.from([1, 0, 1, 0, 1]), { pivot: 0.8, wrongScale: 3, episodic: 0.5 });
    expect([...r]).toEqual([1.5, -2.5, -0.5, 3.5, 0.5]);
  });

  it.each([
    { name: '19 right, 1 wrong', acc: [...Array<number>(19).fill(1), 0.5], want: 19 },
    { name: '3 right, 1 wrong (the pivot counts as right)', acc: [0.8, 0.9, 1, 0.79], want: 3 },
    { name: 'more wrong than right → 1', acc: [0, 0, 1], want: 1 },
    { name: 'none wrong → 1', acc: [1, 1], want: 1 },
    { name: 'none right → 1', acc: [0, 0.1], want: 1 },
    { name: 'capped at 20', acc: [...Array<number>(100).fill(1), 0], want: 20 },
  ])('wrongRegionBalance: $name', ({ acc, want }) => expect(wrongRegionBalance(acc, 0.8, 20)).toBe(want));

  it('the episodic term is added to every region', () => {
    // Dice 0.5 → 0.6 with scale 5: +0.5 to each region's reward.
    const e = episodicReward(0.5, 0.6, 5);
    expect(e).toBeCloseTo(0.5, 10);
    const r = regionRewards(Float32Array.from([1, 0]), Float32Array.from([1, 1]), { pivot: 0.8, episodic: e });
    expect(r[0]).toBeCloseTo(1.5, 6);
    expect(r[1]).toBeCloseTo(-0.5, 6);
  });

  it('the proxy reward: Δ agreement + Δ consistency − any drop in source Dice', () => {
    // (0.65 − 0.6) + (0.85 − 0.8) − max(0, 0.7 − 0.68) = 0.05 + 0.05 − 0.02 = 0.08.
    expect(proxyReward({ agreement: 0.6, consistency: 0.8, sourceDice: 0.7 }, { agreement: 0.65, consistency: 0.85, sourceDice: 0.68 })).toBeCloseTo(0.08, 6);
    // A rise in source Dice is not rewarded: (0) + (0) − max(0, 0.7 − 0.9) = 0.
    expect(proxyReward({ agreement: 0.6, consistency: 0.8, sourceDice: 0.7 }, { agreement: 0.6, consistency: 0.8, sourceDice: 0.9 })).toBe(0);
  });

  it.each([
    ['mismatched maps', () => regionAccuracy([0], [0, 1], [0, 0], 1), 'pseudo-label, label and region maps must have the same voxel count, got 1, 2, 2'],
    ['a region index out of range', () => regionAccuracy([0], [0], [4], 2), 'regionIndex[0] = 4 is not in [0, 1]'],
    ['a gate mask of another size', () => regionAccuracy([0, 1], [0, 1], [0, 0], 1, { mask: [1] }), 'the gate mask must hold one value per voxel (2), got 1'],
    ['a pivot of 1', () => signedCorrectness(0.5, 1), 'pivot must be in (0, 1), got 1'],
    ['weights and accuracy of different lengths', () => regionRewards(new Float32Array(2), new Float32Array(3)), 'weights and accuracy must have one value per region, got 2 and 3'],
  ])('refuses %s', (_name, call, message) => {
    expect(call).toThrow(AdaptationConfigError);
    expect(call).toThrow(message);
  });
});
