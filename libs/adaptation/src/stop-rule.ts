/**
 * The label-free keep-the-best-round rule (stage B, #21 item 6). Self-training
 * can drift: the student learns its own mistakes and the target Dice falls
 * round after round. What the loop can see without target labels is the
 * teacher's Dice on the held-out SOURCE validation volumes and its mean
 * confidence on the target images (`target_confidence`). So:
 *
 * - a round is *eligible* when the teacher's source validation Dice is at
 *   most `maxSourceDrop` below the starting model's (the network still does
 *   the source task; a collapse shows here first);
 * - with a confidence `tolerance`, the kept round is the latest eligible round
 *   whose confidence is within `tolerance` of the best eligible confidence
 *   (ties go to the later, more trained round); with `tolerance: null` the
 *   confidence is not read and the kept round is the latest eligible one;
 * - the loop stops once `patience` rounds in a row were not good (below that
 *   level, or not eligible).
 *
 * The loop runs {@link SOURCE_GUARD} by default. The confidence criterion
 * ({@link CONFIDENCE_KEEP_BEST}) is not: in the stage B probes the confidence
 * fell while the Dice rose on CT → CBCT and on one CT → MR seed
 * (docs/adaptation.md), so it would have thrown good rounds away.
 */
import { AdaptationConfigError } from './errors';

/** Label-free figures of the teacher after a round (round 0 = the starting model). */
export interface RoundProxy {
  readonly round: number;
  /** Mean max class probability of the teacher on the target training images (read only with a confidence tolerance). */
  readonly targetConfidence?: number | undefined;
  /** Organ-average Dice of the teacher on the source validation volumes. */
  readonly sourceValDice: number;
}

export interface KeepBestSettings {
  /** Confidence within this of the best counts as as good; null = the confidence is not read (the latest eligible round is kept). */
  readonly tolerance: number | null;
  /** Largest fall of the source validation Dice below round 0's that keeps a round eligible (default 0.02; negative = a round must beat round 0 by that much). */
  readonly maxSourceDrop: number;
  /** Rounds in a row below the kept level before the loop stops (default 2). */
  readonly patience: number;
}

/** The confidence criterion of the stage B probes (not the loop's default; see the module comment). */
export const CONFIDENCE_KEEP_BEST: KeepBestSettings = Object.freeze({ tolerance: 2e-4, maxSourceDrop: 0.02, patience: 2 });

/** The loop's default: keep the latest round whose teacher still does the source task; stop after two that do not. */
export const SOURCE_GUARD: KeepBestSettings = Object.freeze({ tolerance: null, maxSourceDrop: 0.02, patience: 2 });

export interface RoundDecision {
  /** The round whose teacher to keep (0 = the starting model). */
  readonly keep: number;
  /** Stop training now. */
  readonly stop: boolean;
  /** One line for the job log. */
  readonly reason: string;
}

/** The decision after the rounds in `history` (ascending, starting with round 0). */
export function decideRounds(history: readonly RoundProxy[], settings: KeepBestSettings = CONFIDENCE_KEEP_BEST): RoundDecision {
  const start = history[0];
  if (start === undefined || start.round !== 0) throw new AdaptationConfigError('stop_rule', 'the history must start with round 0 (the starting model)');
  history.forEach((h, i) => {
    if (h.round !== i) throw new AdaptationConfigError('stop_rule', `rounds must be 0, 1, 2, … in order, got ${history.map((x) => x.round).join(', ')}`);
    const confidence = settings.tolerance === null ? 0 : h.targetConfidence;
    if (confidence === undefined || !Number.isFinite(confidence) || !Number.isFinite(h.sourceValDice)) throw new AdaptationConfigError('stop_rule', `round ${h.round} has a non-finite proxy`);
  });
  if (settings.tolerance !== null && !(settings.tolerance >= 0 && Number.isFinite(settings.tolerance))) throw new AdaptationConfigError('stop_rule.tolerance', `the confidence tolerance must be null or a finite number >= 0, got ${settings.tolerance}`);
  if (!Number.isFinite(settings.maxSourceDrop)) throw new AdaptationConfigError('stop_rule.max_source_drop', `maxSourceDrop must be finite, got ${settings.maxSourceDrop}`);
  if (!Number.isInteger(settings.patience) || settings.patience < 1) throw new AdaptationConfigError('stop_rule.patience', `patience must be an integer >= 1, got ${settings.patience}`);
  // The starting model is always a candidate (a negative maxSourceDrop asks later rounds to beat it on the source).
  const eligible = (h: RoundProxy): boolean => h.round === 0 || h.sourceValDice >= start.sourceValDice - settings.maxSourceDrop;
  const tolerance = settings.tolerance;
  let best = -Infinity;
  if (tolerance !== null) for (const h of history) if (eligible(h)) best = Math.max(best, h.targetConfidence!);
  const good = (h: RoundProxy): boolean => eligible(h) && (tolerance === null || h.targetConfidence! >= best - tolerance);
  let keep = 0;
  for (const h of history) if (good(h)) keep = h.round;
  let behind = 0;
  for (let i = history.length - 1; i >= 0 && !good(history[i]!); i--) behind++;
  const stop = behind >= settings.patience;
  const kept = history[keep]!;
  const figures = `${tolerance === null ? '' : `confidence ${kept.targetConfidence!.toFixed(4)}, `}source validation Dice ${kept.sourceValDice.toFixed(3)}, start ${start.sourceValDice.toFixed(3)}`;
  const why = tolerance === null ? `more than ${settings.maxSourceDrop} below the starting source validation Dice` : `below the best target confidence or more than ${settings.maxSourceDrop} below the starting source validation Dice`;
  const reason = stop ? `stopping: ${behind} round(s) in a row ${why}; keeping round ${keep} (${figures})` : `keeping round ${keep} so far (${figures})`;
  return { keep, stop, reason };
}
