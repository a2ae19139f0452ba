import { MetricsError } from './errors';
import { checkLabel } from './label-map';
import type { LabelMetrics } from './metrics';

/** The per-case metrics averaged by the accumulator. */
export const SUMMARY_METRICS = ['dice', 'hdMm', 'hd95Mm', 'assdMm', 'surfaceDice'] as const;
export type SummaryMetric = (typeof SUMMARY_METRICS)[number];

/**
 * Mean ± standard deviation over cases. `std` is the **population** standard
 * deviation (divide by n; numpy's `np.std` default), 0 for one case. `n` is the
 * number of values averaged: NaN values (missing distances) are left out. Mean and
 * std are NaN when n = 0.
 */
export interface MeanStd {
  readonly mean: number;
  readonly std: number;
  readonly n: number;
}

/** One label over all cases. */
export interface LabelSummary {
  readonly label: number;
  /** Cases that reported this label. */
  readonly cases: number;
  /** Cases given to the accumulator that did not report this label at all. */
  readonly missing: number;
  /** Cases where prediction and ground truth were both empty (Dice 1, distances 0 — included in the means). */
  readonly bothEmpty: number;
  /** Cases where exactly one was empty (Dice 0 included; distances missing, not averaged). */
  readonly oneEmpty: number;
  readonly surfaceToleranceMm: number;
  readonly dice: MeanStd;
  readonly hdMm: MeanStd;
  readonly hd95Mm: MeanStd;
  readonly assdMm: MeanStd;
  readonly surfaceDice: MeanStd;
}

/** One case as given to `update`. */
export interface CaseResult {
  readonly caseId: string;
  readonly labels: readonly LabelMetrics[];
}

export interface MetricsSummary {
  /** Number of cases given to `update`. */
  readonly cases: number;
  /** Per label, ascending by label; labels in `absentLabels` are not here. */
  readonly labels: readonly LabelSummary[];
  /**
   * Labels that were empty in both prediction and ground truth in **every** case
   * that reported them, ascending. Nothing was there to segment, so they have no
   * score: they are left out of `labels`, `organAverage` and `perCase` (otherwise
   * each would count as Dice 1 and lift the average). A label empty on both sides
   * in only some cases is not absent: those cases count as both-empty (Dice 1).
   */
  readonly absentLabels: readonly number[];
  /**
   * Organ average: the mean over `labels` of each label's mean (labels whose mean is
   * NaN — no value at all — are left out; NaN if no label has a value).
   */
  readonly organAverage: Readonly<Record<SummaryMetric, number>>;
  /** Every case, in the order given, each without the labels in `absentLabels`. */
  readonly perCase: readonly CaseResult[];
}

/**
 * Collects per-case label metrics and summarises them (DESIGN.md §6): per label
 * mean ± population std over cases, then the average over labels, plus counts of
 * both-empty, one-empty and missing cases. Labels empty on both sides in every
 * case are reported as absent and scored nowhere (see `MetricsSummary.absentLabels`).
 */
export class MetricsAccumulator {
  private readonly results: CaseResult[] = [];
  private readonly ids = new Set<string>();
  private readonly tolerances = new Map<number, number>();

  /** Number of cases accumulated so far. */
  get caseCount(): number {
    return this.results.length;
  }

  /**
   * Adds one case. Throws MetricsError for an empty or repeated case id, a
   * non-integer or repeated label within the case, or a surface tolerance that
   * differs from the one earlier cases used for the same label.
   */
  update(caseId: string, perLabel: readonly LabelMetrics[]): void {
    if (typeof caseId !== 'string' || caseId === '') {
      throw new MetricsError(`caseId must be a non-empty string, got ${JSON.stringify(caseId)}`);
    }
    if (this.ids.has(caseId)) throw new MetricsError(`case "${caseId}" was already added`);
    const seen = new Set<number>();
    for (const m of perLabel) {
      checkLabel(m.label, `case "${caseId}": label`);
      if (seen.has(m.label)) throw new MetricsError(`case "${caseId}": label ${m.label} appears twice`);
      seen.add(m.label);
      const tol = this.tolerances.get(m.label);
      if (tol !== undefined && tol !== m.surfaceToleranceMm) {
        throw new MetricsError(
          `case "${caseId}": label ${m.label} has surfaceToleranceMm ${m.surfaceToleranceMm}, earlier cases used ${tol}`,
        );
      }
    }
    for (const m of perLabel) this.tolerances.set(m.label, m.surfaceToleranceMm);
    this.ids.add(caseId);
    this.results.push({ caseId, labels: [...perLabel] });
  }

  /** The summary of every case added since construction or the last `reset`. */
  aggregate(): MetricsSummary {
    const byLabel = new Map<number, LabelMetrics[]>();
    for (const c of this.results) {
      for (const m of c.labels) {
        const list = byLabel.get(m.label) ?? [];
        list.push(m);
        byLabel.set(m.label, list);
      }
    }
    const sorted = [...byLabel.keys()].sort((a, b) => a - b);
    const absent = new Set(sorted.filter((label) => (byLabel.get(label) ?? []).every((m) => m.bothEmpty)));
    const labels = sorted.filter((label) => !absent.has(label)).map((label): LabelSummary => {
      const list = byLabel.get(label) ?? [];
      const stat = (metric: SummaryMetric): MeanStd => meanStd(list.map((m) => m[metric]));
      return {
        label,
        cases: list.length,
        missing: this.results.length - list.length,
        bothEmpty: list.filter((m) => m.bothEmpty).length,
        oneEmpty: list.filter((m) => m.oneEmpty).length,
        surfaceToleranceMm: this.tolerances.get(label) ?? NaN,
        dice: stat('dice'),
        hdMm: stat('hdMm'),
        hd95Mm: stat('hd95Mm'),
        assdMm: stat('assdMm'),
        surfaceDice: stat('surfaceDice'),
      };
    });
    const organAverage = Object.fromEntries(
      SUMMARY_METRICS.map((metric) => [metric, meanStd(labels.map((s) => s[metric].mean)).mean]),
    ) as Record<SummaryMetric, number>;
    const perCase = this.results.map((c) => (c.labels.some((m) => absent.has(m.label)) ? { caseId: c.caseId, labels: c.labels.filter((m) => !absent.has(m.label)) } : c));
    return { cases: this.results.length, labels, absentLabels: [...absent], organAverage, perCase };
  }

  /** Forgets every case. */
  reset(): void {
    this.results.length = 0;
    this.ids.clear();
    this.tolerances.clear();
  }
}

/** Mean and population std of the non-NaN values (two-pass for accuracy). */
export function meanStd(values: readonly number[]): MeanStd {
  const finite = values.filter((v) => !Number.isNaN(v));
  const n = finite.length;
  if (n === 0) return { mean: NaN, std: NaN, n: 0 };
  const mean = finite.reduce((s, v) => s + v, 0) / n;
  const variance = finite.reduce((s, v) => s + (v - mean) * (v - mean), 0) / n;
  return { mean, std: Math.sqrt(variance), n };
}
