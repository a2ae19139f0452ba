import { decideRounds, SOURCE_GUARD, type KeepBestSettings, type RoundProxy } from './stop-rule';

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
    // [case, source validation Dice of the teacher per round 0…n, kept round, stop]
    ['every round does the source task: the last round, go on', [0.95, 0.946, 0.949, 0.947], 3, false],
    ['a drop of exactly 0.02 is still eligible', [0.95, 0.93], 1, false],
    ['a collapse from round 1 (the normalised-loss drift): keep the starting model, stop after two', [0.95, 0.907, 0.915, 0.876], 0, true],
    ['one bad round in between: the later eligible round is kept', [0.95, 0.948, 0.9, 0.94], 3, false],
    ['one bad round at the end: the round before it is kept, not yet a stop', [0.95, 0.948, 0.9], 1, false],
  ])('the source guard (confidence not read): %s', (_case, sourceValDice, keep, stop) => {
    // The confidence is absent: the guard must not need it.
    const d = decideRounds(sourceValDice.map((x, round) => ({ round, sourceValDice: x })), SOURCE_GUARD);
    expect([d.keep, d.stop]).toEqual([keep, stop]);
    expect(d.reason).toMatch(new RegExp(`^${stop ? 'stopping: \\d+ round\\(s\\) in a row more than 0.02 below the starting source validation Dice; keeping' : 'keeping'} round ${keep} (so far )?\\(source validation Dice ${sourceValDice[keep]!.toFixed(3)}, start 0.950\\)$`));
  });

  it.each([
    ['an empty history', [], 'the history must start with round 0', undefined],
    ['a history without round 0', [{ round: 1, targetConfidence: 0.9, sourceValDice: 0.9 }], 'the history must start with round 0', undefined],
    ['rounds out of order', [{ round: 0, targetConfidence: 0.9, sourceValDice: 0.9 }, { round: 2, targetConfidence: 0.9, sourceValDice: 0.9 }], 'rounds must be 0, 1, 2, … in order, got 0, 2', undefined],
    ['a negative tolerance', [{ round: 0, targetConfidence: 0.9, sourceValDice: 0.9 }], 'the confidence tolerance must be null or a finite number >= 0, got -1', { tolerance: -1, maxSourceDrop: 0.02, patience: 2 }],
    ['patience 0', [{ round: 0, sourceValDice: 0.9 }], 'patience must be an integer >= 1, got 0', { tolerance: null, maxSourceDrop: 0.02, patience: 0 }],
    ['a NaN proxy', [{ round: 0, targetConfidence: Number.NaN, sourceValDice: 0.9 }], 'round 0 has a non-finite proxy', undefined],
  ])('refuses %s', (_case, history, message, settings: KeepBestSettings | undefined) => {
    expect(() => decideRounds(history as RoundProxy[], settings)).toThrow(message);
  });
});
