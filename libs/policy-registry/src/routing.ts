import { createHash } from 'node:crypto';

/**
 * Deterministic traffic assignment by weighted rendezvous hashing
 * (highest-random-weight): for routing key k and live arm a with weight w_a,
 *
 *   u(a, k)     = (first 52 bits of SHA-256(salt ␀ a.name ␀ k) + 0.5) / 2^52   ∈ (0, 1)
 *   score(a, k) = ln(u(a, k)) / w_a                                            (≤ 0)
 *
 * and k goes to the arm with the highest score (ties → the earlier arm). With
 * independent uniform u, −ln u is Exp(1) and −ln(u)/w is Exp(w), so arm a wins
 * with probability exactly w_a / Σ w. The assignment needs no state (two
 * replicas agree whenever they hold the same arms and salt) and is independent
 * of the arms' order. When weights change, a key moves only if its winner
 * changes: for two arms going from (p, 1−p) to (q, 1−q) exactly |p − q| of the
 * keys move, all in the direction of the arm that gained (the minimum
 * possible); adding an arm only takes keys to the new arm. Renaming an arm
 * re-draws its keys; changing an arm's policy under the same name keeps them.
 */

const TWO_POW_52 = 2 ** 52;

/** u(arm, key) ∈ (0, 1) as defined above. */
export function routingUniform(salt: string, armName: string, key: string): number {
  const digest = createHash('sha256').update(`${salt}\u0000${armName}\u0000${key}`, 'utf8').digest();
  // First 52 bits, big-endian: 32 bits then the top 20 of the next word.
  const hi = digest.readUInt32BE(0);
  const lo = digest.readUInt32BE(4) >>> 12;
  return (hi * 2 ** 20 + lo + 0.5) / TWO_POW_52;
}

export interface WeightedArm {
  readonly name: string;
  /** ≥ 0; arms with weight 0 are never chosen. */
  readonly weight: number;
}

/** Index of the arm `key` is assigned to, or -1 when no arm has a positive weight. */
export function assignArm(salt: string, arms: readonly WeightedArm[], key: string): number {
  let best = -1;
  let bestScore = -Infinity;
  arms.forEach((arm, i) => {
    if (!(arm.weight > 0)) return;
    const score = Math.log(routingUniform(salt, arm.name, key)) / arm.weight;
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  });
  return best;
}
