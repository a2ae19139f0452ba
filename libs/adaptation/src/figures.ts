/**
 * Small label-map figures on the working grid (label maps `[z, y, x]`, class
 * indices): organ-average Dice for the simulated-shift episodes, and the
 * agreement of two label maps.
 */

/**
 * Organ-average Dice of one prediction against one label map: Dice per class
 * 1..K−1 = 2|P∩G| / (|P| + |G|), averaged over the classes present in either
 * (both empty: the class is skipped); no class present anywhere → 1.
 */
export function organDice(pred: ArrayLike<number>, label: ArrayLike<number>, numClasses: number): number {
  const inter = new Float64Array(numClasses);
  const p = new Float64Array(numClasses);
  const g = new Float64Array(numClasses);
  for (let i = 0; i < label.length; i++) {
    const a = pred[i] as number;
    const b = label[i] as number;
    p[a]! += 1;
    g[b]! += 1;
    if (a === b) inter[a]! += 1;
  }
  let sum = 0;
  let n = 0;
  for (let c = 1; c < numClasses; c++) {
    const denom = (p[c] as number) + (g[c] as number);
    if (denom === 0) continue;
    sum += (2 * (inter[c] as number)) / denom;
    n++;
  }
  return n === 0 ? 1 : sum / n;
}

/** Fraction of pixels where two label maps agree (1 for empty maps). */
export function labelAgreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`label maps must have the same length, got ${a.length} and ${b.length}`);
  if (a.length === 0) return 1;
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}
