/**
 * Paired comparison of two methods over seeds (#21 item 8): the per-seed
 * differences of the organ-average Dice, how many seeds each method wins, and
 * a hierarchical bootstrap interval of the mean difference — seeds resampled
 * with replacement, then each drawn seed's test cases resampled with
 * replacement, the difference taken per case (both methods are scored on the
 * same cases, so the pairing holds within a seed). With three seeds the seed
 * level alone has 10 distinct resamples; the case level is what makes the
 * interval informative, and the seed level keeps a seed-to-seed swing from
 * hiding in it.
 */
import { MetricsError } from './errors';
import { percentileSorted } from './percentile';

/** One seed of one method: its seed, organ-average Dice, and per-case Dice in a fixed case order. */
export interface SeedScores {
  readonly seed: number;
  readonly dice: number;
  readonly perCaseDice: readonly number[];
}

export interface PairedComparison {
  /** Seeds both methods have, ascending. */
  readonly seeds: number[];
  /** a − b per seed (organ-average Dice). */
  readonly perSeed: number[];
  readonly meanDifference: number;
  /** Seeds where a is above b, below b, equal. */
  readonly wins: number;
  readonly losses: number;
  readonly ties: number;
  /** 95 % hierarchical bootstrap interval of the mean per-case difference. */
  readonly ci95: [number, number];
  readonly resamples: number;
}

/** mulberry32: a small, fast, seeded generator of floats in [0, 1) (the bootstrap's, so its interval is reproducible). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Compares `a` with `b` on the seeds both have (see the module comment). */
export function pairedComparison(a: readonly SeedScores[], b: readonly SeedScores[], options: { resamples?: number; seed?: number } = {}): PairedComparison {
  const resamples = options.resamples ?? 10_000;
  if (!Number.isInteger(resamples) || resamples < 1) throw new MetricsError(`resamples must be a positive integer, got ${resamples}`);
  const bySeed = new Map(b.map((x) => [x.seed, x]));
  const pairs = a
    .filter((x) => bySeed.has(x.seed))
    .sort((x, y) => x.seed - y.seed)
    .map((x) => {
      const y = bySeed.get(x.seed)!;
      if (x.perCaseDice.length !== y.perCaseDice.length || x.perCaseDice.length === 0) {
        throw new MetricsError(`seed ${x.seed}: the methods were scored on ${x.perCaseDice.length} and ${y.perCaseDice.length} cases; a paired comparison needs the same, non-empty case list`);
      }
      return { seed: x.seed, diff: x.dice - y.dice, caseDiffs: x.perCaseDice.map((d, i) => d - (y.perCaseDice[i] as number)) };
    });
  if (pairs.length === 0) throw new MetricsError('no seed is shared by the two methods');
  const perSeed = pairs.map((p) => p.diff);
  const rand = mulberry32(options.seed ?? 1);
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let s = 0; s < pairs.length; s++) {
      const cases = pairs[Math.floor(rand() * pairs.length)]!.caseDiffs;
      let m = 0;
      for (let c = 0; c < cases.length; c++) m += cases[Math.floor(rand() * cases.length)] as number;
      sum += m / cases.length;
    }
    means[r] = sum / pairs.length;
  }
  means.sort();
  return {
    seeds: pairs.map((p) => p.seed),
    perSeed,
    meanDifference: perSeed.reduce((x, y) => x + y, 0) / perSeed.length,
    wins: perSeed.filter((d) => d > 0).length,
    losses: perSeed.filter((d) => d < 0).length,
    ties: perSeed.filter((d) => d === 0).length,
    ci95: [percentileSorted(means, 2.5), percentileSorted(means, 97.5)],
    resamples,
  };
}
