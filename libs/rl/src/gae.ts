import type { Trajectory } from './types';

export interface GaeResult {
  /** Advantage per transition, trajectories concatenated in order, oldest first. */
  readonly advantages: Float64Array;
  /** Value targets (advantage + value) in the same order. */
  readonly returns: Float64Array;
}

/**
 * Generalised advantage estimation, GAE(γ, λ), within each trajectory:
 *   δ_t = r_t + γ·V_{t+1}·(1 − done_t) − V_t
 *   A_t = δ_t + γλ·(1 − done_t)·A_{t+1}
 * An episode boundary (`done`) inside a trajectory resets the recursion. The
 * state after a trajectory's last transition is unobserved: when that
 * transition is not `done`, V_{T} is taken as the last transition's own value
 * (the bootstrap of types.ts), so no transition is dropped.
 */
export function computeGae(trajectories: readonly Trajectory[], gamma: number, lambda: number): GaeResult {
  const total = trajectories.reduce((n, t) => n + t.length, 0);
  const advantages = new Float64Array(total);
  const returns = new Float64Array(total);
  let offset = 0;
  for (const trajectory of trajectories) {
    const length = trajectory.length;
    let nextAdvantage = 0;
    for (let t = length - 1; t >= 0; t--) {
      const step = trajectory[t]!;
      let nextValue: number;
      if (step.done) {
        nextValue = 0;
        nextAdvantage = 0;
      } else if (t === length - 1) {
        nextValue = step.value;
        nextAdvantage = 0;
      } else {
        nextValue = trajectory[t + 1]!.value;
      }
      const delta = step.reward + gamma * nextValue - step.value;
      const advantage = delta + gamma * lambda * nextAdvantage;
      advantages[offset + t] = advantage;
      returns[offset + t] = advantage + step.value;
      nextAdvantage = advantage;
    }
    offset += length;
  }
  return { advantages, returns };
}
