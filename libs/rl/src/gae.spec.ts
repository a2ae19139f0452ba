import { computeGae } from './gae';
import type { Transition } from './types';

const obs = new Float32Array([0]);
/** A transition with only the fields GAE reads. */
function step(reward: number, value: number, done = false): Transition {
  return { observation: obs, action: 0, logProb: 0, value, reward, done };
}

describe('computeGae', () => {
  it.each([
    [
      // γ = 0.9, λ = 0.8 (γλ = 0.72); rewards [1, 0, 2], values [0.5, 1, 1.5], done at the end:
      // δ2 = 2 − 1.5 = 0.5                 A2 = 0.5
      // δ1 = 0 + 0.9·1.5 − 1 = 0.35        A1 = 0.35 + 0.72·0.5 = 0.71
      // δ0 = 1 + 0.9·1 − 0.5 = 1.4         A0 = 1.4 + 0.72·0.71 = 1.9112
      // returns = A + V = [2.4112, 1.71, 2.0]
      'a terminated episode',
      [[step(1, 0.5), step(0, 1), step(2, 1.5, true)]],
      [1.9112, 0.71, 0.5],
      [2.4112, 1.71, 2.0],
    ],
    [
      // Same, but the trajectory is cut without `done`: V after the last step is taken as V2 = 1.5:
      // δ2 = 2 + 0.9·1.5 − 1.5 = 1.85      A2 = 1.85
      // A1 = 0.35 + 0.72·1.85 = 1.682      A0 = 1.4 + 0.72·1.682 = 2.61104
      'a truncated trajectory (bootstrapped with its last value)',
      [[step(1, 0.5), step(0, 1), step(2, 1.5)]],
      [2.61104, 1.682, 1.85],
      [3.11104, 2.682, 3.35],
    ],
    [
      // `done` in the middle resets: episode 1 = [r 1, V 0.5 (done)], episode 2 = [r 2, V 1 (done)]:
      // A0 = 1 − 0.5 = 0.5 (nothing after the boundary leaks in), A1 = 2 − 1 = 1
      'an episode boundary inside a trajectory',
      [[step(1, 0.5, true), step(2, 1, true)]],
      [0.5, 1],
      [1, 2],
    ],
    [
      // Two trajectories are independent and concatenated in order: [r 1, V 0 (done)] and [r 0, V 2 (cut)]:
      // A = [1, 0 + 0.9·2 − 2 = −0.2]
      'two trajectories',
      [[step(1, 0, true)], [step(0, 2)]],
      [1, -0.2],
      [1, 1.8],
    ],
  ])('%s', (_name, trajectories, advantages, returns) => {
    const gae = computeGae(trajectories, 0.9, 0.8);
    expect(gae.advantages).toHaveLength(advantages.length);
    advantages.forEach((a, i) => expect(gae.advantages[i]).toBeCloseTo(a, 12));
    returns.forEach((r, i) => expect(gae.returns[i]).toBeCloseTo(r, 12));
  });

  it('λ = 1 gives discounted Monte-Carlo returns; λ = 0 gives one-step TD errors', () => {
    // rewards [1, 1, 1], values [0, 0, 0], done: returns with γ = 0.5 are [1.75, 1.5, 1]; TD errors are the rewards.
    const t = [[step(1, 0), step(1, 0), step(1, 0, true)]];
    expect(Array.from(computeGae(t, 0.5, 1).returns)).toEqual([1.75, 1.5, 1]);
    expect(Array.from(computeGae(t, 0.5, 0).advantages)).toEqual([1, 1, 1]);
  });
});
