/**
 * Evaluation statistics for the reliability evidence: AUROC, Spearman rank
 * correlation and a small L2-regularised logistic regression. Pure, float64.
 */

/** Ranks 1…n with ties given their average rank (scipy.stats.rankdata 'average'). */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (values[a] as number) - (values[b] as number));
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && values[order[j + 1] as number] === values[order[i] as number]) j++;
    const r = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) ranks[order[t] as number] = r;
    i = j + 1;
  }
  return ranks;
}

function checkFinite(values: ArrayLike<number>, what: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new RangeError(`${what}[${i}] must be finite, got ${values[i]}`);
  }
}

/**
 * Area under the ROC curve of `scores` for detecting `positives` (higher score =
 * more likely positive): the Mann–Whitney U / (n₊ n₋), ties counted ½.
 * NaN when one class is empty.
 */
export function auroc(scores: ArrayLike<number>, positives: ArrayLike<boolean>): number {
  if (scores.length !== positives.length) throw new RangeError(`auroc needs as many labels as scores, got ${positives.length} and ${scores.length}`);
  checkFinite(scores, 'scores');
  const ranks = averageRanks(scores);
  let nPos = 0;
  let rankSum = 0;
  for (let i = 0; i < scores.length; i++) {
    if (positives[i]) {
      nPos++;
      rankSum += ranks[i] as number;
    }
  }
  const nNeg = scores.length - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Pearson correlation; NaN when either input is constant or shorter than 2. */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`pearson needs equal lengths, got ${a.length} and ${b.length}`);
  const n = a.length;
  if (n < 2) return Number.NaN;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] as number;
    mb += b[i] as number;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = (a[i] as number) - ma;
    const db = (b[i] as number) - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : Number.NaN;
}

/** Spearman rank correlation (Pearson on average ranks, as scipy.stats.spearmanr). */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`spearman needs equal lengths, got ${a.length} and ${b.length}`);
  checkFinite(a, 'a');
  checkFinite(b, 'b');
  return pearson(averageRanks(a), averageRanks(b));
}

/** p(y = 1 | x) = σ(w·x + b). */
export interface LogisticModel {
  readonly weights: readonly number[];
  readonly bias: number;
}

export interface LogisticOptions {
  /** L2 penalty λ on the weights (not the bias): loss = Σ CE + λ/2 ‖w‖². Default 1. */
  readonly l2?: number;
  /** Newton iterations at most. Default 50. */
  readonly maxIterations?: number;
  /** Stop when the largest Newton step is below this. Default 1e-10. */
  readonly tolerance?: number;
}

const sigmoid = (t: number): number => (t >= 0 ? 1 / (1 + Math.exp(-t)) : Math.exp(t) / (1 + Math.exp(t)));

/** p(y = 1) of every row of `x` (row-major `[n, d]`). */
export function logisticPredict(model: LogisticModel, x: ArrayLike<number>): Float64Array {
  const d = model.weights.length;
  if (x.length % d !== 0) throw new RangeError(`logisticPredict needs rows of ${d} values, got ${x.length} values`);
  const n = x.length / d;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let t = model.bias;
    for (let j = 0; j < d; j++) t += (model.weights[j] as number) * (x[i * d + j] as number);
    out[i] = sigmoid(t);
  }
  return out;
}

/** Solves A v = r for a symmetric positive-definite A (row-major m × m) by Cholesky. */
function solveSpd(a: Float64Array, r: Float64Array, m: number): Float64Array {
  const l = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * m + j] as number;
      for (let t = 0; t < j; t++) s -= (l[i * m + t] as number) * (l[j * m + t] as number);
      if (i === j) {
        if (!(s > 0)) throw new RangeError('logistic regression: the Hessian is not positive definite (add an L2 penalty)');
        l[i * m + i] = Math.sqrt(s);
      } else l[i * m + j] = s / (l[j * m + j] as number);
    }
  }
  const y = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = r[i] as number;
    for (let t = 0; t < i; t++) s -= (l[i * m + t] as number) * (y[t] as number);
    y[i] = s / (l[i * m + i] as number);
  }
  const v = new Float64Array(m);
  for (let i = m - 1; i >= 0; i--) {
    let s = y[i] as number;
    for (let t = i + 1; t < m; t++) s -= (l[t * m + i] as number) * (v[t] as number);
    v[i] = s / (l[i * m + i] as number);
  }
  return v;
}

/**
 * Fits p(y = 1 | x) = σ(w·x + b) to rows `x` (row-major `[n, d]`) and labels `y`
 * by Newton's method on the objective Σᵢ CE(yᵢ, pᵢ) + λ/2 ‖w‖²
 * (the bias is not penalised).
 */
export function fitLogistic(x: ArrayLike<number>, y: ArrayLike<boolean>, d: number, options: LogisticOptions = {}): LogisticModel {
  const n = y.length;
  if (!Number.isSafeInteger(d) || d < 1 || x.length !== n * d) throw new RangeError(`fitLogistic needs x of [n, d] = [${n}, ${d}] values, got ${x.length}`);
  if (n === 0) throw new RangeError('fitLogistic needs at least one row');
  checkFinite(x, 'x');
  const l2 = options.l2 ?? 1;
  if (!(l2 >= 0)) throw new RangeError(`fitLogistic l2 must be ≥ 0, got ${l2}`);
  const maxIterations = options.maxIterations ?? 50;
  const tolerance = options.tolerance ?? 1e-10;
  const m = d + 1; // parameters: w (d), then b
  const theta = new Float64Array(m);
  const row = (i: number, j: number): number => (j < d ? (x[i * d + j] as number) : 1);
  for (let iter = 0; iter < maxIterations; iter++) {
    const grad = new Float64Array(m);
    const hess = new Float64Array(m * m);
    for (let j = 0; j < d; j++) {
      grad[j] = l2 * (theta[j] as number);
      hess[j * m + j] = l2;
    }
    for (let i = 0; i < n; i++) {
      let t = theta[d] as number;
      for (let j = 0; j < d; j++) t += (theta[j] as number) * (x[i * d + j] as number);
      const p = sigmoid(t);
      const e = p - (y[i] ? 1 : 0);
      const wgt = p * (1 - p);
      for (let a = 0; a < m; a++) {
        const xa = row(i, a);
        grad[a] = (grad[a] as number) + e * xa;
        for (let b = 0; b <= a; b++) hess[a * m + b] = (hess[a * m + b] as number) + wgt * xa * row(i, b);
      }
    }
    for (let a = 0; a < m; a++) for (let b = a + 1; b < m; b++) hess[a * m + b] = hess[b * m + a] as number;
    // A tiny ridge on the bias keeps separable data from breaking the solve.
    hess[m * m - 1] = (hess[m * m - 1] as number) + 1e-9;
    const step = solveSpd(hess, grad, m);
    let largest = 0;
    for (let a = 0; a < m; a++) {
      theta[a] = (theta[a] as number) - (step[a] as number);
      largest = Math.max(largest, Math.abs(step[a] as number));
    }
    if (largest < tolerance) break;
  }
  return { weights: Array.from(theta.subarray(0, d)), bias: theta[d] as number };
}
