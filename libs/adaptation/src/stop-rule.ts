/**
 * The label-free keep-the-best-round rule (stage B, #21 item 6). Self-training
 * can drift: the student learns its own mistakes and the target Dice falls
 * round after round. What the loop can see without target labels is the
 * teacher's mean confidence on the target images (`target_confidence`) and its
 * Dice on the held-out SOURCE validation volumes. In the stage B probes
 * (docs/adaptation.md) the confidence rose or stayed flat while the target
 * Dice rose, and fell from the round the drift began; the source validation
 * Dice fell later and less clearly. So:
 *
 * - a round is *eligible* when its source validation Dice is at most
 *   `maxSourceDrop` below the starting model's (the student still does the
 *   source task);
 * - the kept round is the latest eligible round whose confidence is within
 *   `tolerance` of the best eligible confidence (ties go to the later, more
 *   trained round, which kept improving in every non-drifting probe);
 * - the loop stops once `patience` rounds in a row were below that level or
 *   not eligible.
 */
import { AdaptationConfigError } from './errors';

/** Label-free figures of the teacher after a round (round 0 = the starting model). */
export interface RoundProxy {
  readonly round: number;
  /** Mean max class probability of the teacher on the target training images. */
  readonly targetConfidence: number;
  /** Organ-average Dice of the teacher on the source validation volumes. */
  readonly sourceValDice: number;
}

export interface KeepBestSettings {
  /** Confidence within this of the best counts as as good (default 2e-4). */
  readonly tolerance: number;
  /** Largest fall of the source validation Dice below round 0's that keeps a round eligible (default 0.02). */
  readonly maxSourceDrop: number;
  /** Rounds in a row below the kept level before the loop stops (default 2). */
  readonly patience: number;
}

export const DEFAULT_KEEP_BEST: KeepBestSettings = Object.freeze({ tolerance: 2e-4, maxSourceDrop: 0.02, patience: 2 });

export interface RoundDecision {
  /** The round whose teacher to keep (0 = the starting model). */
  readonly keep: number;
  /** Stop training now. */
  readonly stop: boolean;
  /** One line for the job log. */
  readonly reason: string;
}

/** The decision after the rounds in `history` (ascending, starting with round 0). */
export function decideRounds(history: readonly RoundProxy[], settings: KeepBestSettings = DEFAULT_KEEP_BEST): RoundDecision {
  const start = history[0];
  if (start === undefined || start.round !== 0) throw new AdaptationConfigError('stop_rule', 'the history must start with round 0 (the starting model)');
  history.forEach((h, i) => {
    if (h.round !== i) throw new AdaptationConfigError('stop_rule', `rounds must be 0, 1, 2, … in order, got ${history.map((x) => x.round).join(', ')}`);
    if (!Number.isFinite(h.targetConfidence) || !Number.isFinite(h.sourceValDice)) throw new AdaptationConfigError('stop_rule', `round ${h.round} has a non-finite proxy`);
  });
  const eligible = (h: RoundProxy): boolean => h.sourceValDice >= start.sourceValDice - settings.maxSourceDrop;
  let best = -Infinity;
  for (const h of history) if (eligible(h)) best = Math.max(best, h.targetConfidence);
  const level = best - settings.tolerance;
  const good = (h: RoundProxy): boolean => eligible(h) && h.targetConfidence >= level;
  let keep = 0;
  for (const h of history) if (good(h)) keep = h.round;
  let behind = 0;
  for (let i = history.length - 1; i >= 0 && !good(history[i]!); i--) behind++;
  const stop = behind >= settings.patience;
  const kept = history[keep]!;
  const reason = stop
    ? `stopping: ${behind} round(s) in a row below the best target confidence or more than ${settings.maxSourceDrop} below the starting source validation Dice; keeping round ${keep} (confidence ${kept.targetConfidence.toFixed(4)}, source validation Dice ${kept.sourceValDice.toFixed(3)})`
    : `keeping round ${keep} so far (confidence ${kept.targetConfidence.toFixed(4)}, source validation Dice ${kept.sourceValDice.toFixed(3)})`;
  return { keep, stop, reason };
}
