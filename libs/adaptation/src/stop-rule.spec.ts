import { decideRounds, type RoundProxy } from './stop-rule';

const rounds = (confidence: number[], sourceValDice: number[]): RoundProxy[] =>
  confidence.map((c, round) => ({ round, targetConfidence: c, sourceValDice: sourceValDice[round] ?? sourceValDice[sourceValDice.length - 1]! }));

describe('decideRounds (keep the best round, label-free)', () => {
  it.each([
    // [case, target confidence per round 0…n, source validation Dice per round, kept round, stop]
    ['rising confidence (the naive probe): the last round, go on', [0.9939, 0.9943, 0.9944, 0.9944, 0.9945, 0.9946], [0.982, 0.981], 5, false],
    ['flat confidence: ties go to the later round', [0.994, 0.994, 0.994, 0.994], [0.98], 3, false],
    ['confidence falling after round 1 (the drifting cbst probe): keep 1, stop after 2 rounds below', [0.9939, 0.9938, 0.9933, 0.9926], [0.982, 0.981, 0.9805, 0.9817], 1, true],
    ['one round below is not yet a stop', [0.9939, 0.9943, 0.9935], [0.98], 1, false],
    ['recovering after one bad round: the later good round is kept', [0.9939, 0.9943, 0.9935, 0.9944], [0.98], 3, false],
    ['the source validation Dice falls more than 0.02: those rounds are not eligible', [0.99, 0.991, 0.992, 0.995, 0.996], [0.98, 0.975, 0.97, 0.955, 0.95], 2, true],
    ['nothing beats the starting model: keep round 0 and stop', [0.995, 0.99, 0.985], [0.98], 0, true],
  ])('%s', (_case, confidence, sourceValDice, keep, stop) => {
    const d = decideRounds(rounds(confidence, sourceValDice));
    expect(d.keep).toBe(keep);
    expect(d.stop).toBe(stop);
    expect(d.reason).toContain(`round ${keep}`);
  });

  it('takes its settings: a wider tolerance keeps a later, slightly less confident round; more patience does not stop', () => {
    const h = rounds([0.9939, 0.9943, 0.9938, 0.9937], [0.98]);
    expect(decideRounds(h).keep).toBe(1);
    expect(decideRounds(h, { tolerance: 0.001, maxSourceDrop: 0.02, patience: 2 }).keep).toBe(3);
    expect(decideRounds(h, { tolerance: 2e-4, maxSourceDrop: 0.02, patience: 3 }).stop).toBe(false);
  });

  it.each([
    ['an empty history', [], 'the history must start with round 0'],
    ['a history without round 0', [{ round: 1, targetConfidence: 0.9, sourceValDice: 0.9 }], 'the history must start with round 0'],
    ['rounds out of order', [{ round: 0, targetConfidence: 0.9, sourceValDice: 0.9 }, { round: 2, targetConfidence: 0.9, sourceValDice: 0.9 }], 'rounds must be 0, 1, 2, … in order, got 0, 2'],
    ['a NaN proxy', [{ round: 0, targetConfidence: Number.NaN, sourceValDice: 0.9 }], 'round 0 has a non-finite proxy'],
  ])('refuses %s', (_case, history, message) => {
    expect(() => decideRounds(history as RoundProxy[])).toThrow(message);
  });
});
