import { ModelConfigError } from './errors';

/** Shape of the learning-rate decay after warm-up. */
export const LrDecay = {
  /** `baseLr` for ever. */
  Constant: 'constant',
  /** `minLr + (baseLr − minLr) · (1 − p)^power`. */
  Poly: 'poly',
  /** `minLr + (baseLr − minLr) · (1 + cos(π p)) / 2`. */
  Cosine: 'cosine',
} as const;
export type LrDecay = (typeof LrDecay)[keyof typeof LrDecay];

/**
 * Learning rate as a function of the 0-based update index `step`:
 * linear warm-up `baseLr · (step + 1) / warmupSteps` for `step < warmupSteps`,
 * then the decay with progress `p = (step − warmupSteps) / (totalSteps − warmupSteps)`
 * clamped to [0, 1] (so the rate stays at `minLr` after `totalSteps`).
 */
export interface LrSchedule {
  readonly decay: LrDecay;
  readonly baseLr: number;
  /** Default 0 (no warm-up). */
  readonly warmupSteps: number;
  /** Length of warm-up + decay in updates; required (> warmupSteps) for poly and cosine. */
  readonly totalSteps: number;
  /** Poly exponent, default 0.9. */
  readonly power: number;
  /** Floor of the decay, default 0. */
  readonly minLr: number;
}

/** Validates and completes a schedule (or a constant rate given as a number). */
export function resolveLrSchedule(input: number | (Partial<LrSchedule> & { baseLr: number })): LrSchedule {
  const c = typeof input === 'number' ? { baseLr: input } : input;
  const decay = c.decay ?? LrDecay.Constant;
  const s: LrSchedule = {
    decay,
    baseLr: c.baseLr,
    warmupSteps: c.warmupSteps ?? 0,
    totalSteps: c.totalSteps ?? 0,
    power: c.power ?? 0.9,
    minLr: c.minLr ?? 0,
  };
  const bad = (field: string, want: string, got: unknown): never => {
    throw new ModelConfigError(`LrSchedule.${field} must be ${want}, got ${JSON.stringify(got)}`);
  };
  if (!(Object.values(LrDecay) as string[]).includes(decay)) bad('decay', `one of ${Object.values(LrDecay).join(', ')}`, decay);
  if (!(s.baseLr > 0) || !Number.isFinite(s.baseLr)) bad('baseLr', 'a finite number > 0', s.baseLr);
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0) bad('warmupSteps', 'an integer ≥ 0', s.warmupSteps);
  if (!(s.minLr >= 0) || s.minLr > s.baseLr) bad('minLr', `a number in [0, baseLr = ${s.baseLr}]`, s.minLr);
  if (!(s.power > 0) || !Number.isFinite(s.power)) bad('power', 'a finite number > 0', s.power);
  if (decay !== LrDecay.Constant && (!Number.isInteger(s.totalSteps) || s.totalSteps <= s.warmupSteps)) {
    bad('totalSteps', `an integer > warmupSteps (${s.warmupSteps}) for '${decay}' decay`, s.totalSteps);
  }
  return Object.freeze(s);
}

/** The learning rate of update number `step` (0-based) under a resolved schedule. */
export function learningRateAt(s: LrSchedule, step: number): number {
  if (step < s.warmupSteps) return (s.baseLr * (step + 1)) / s.warmupSteps;
  if (s.decay === LrDecay.Constant) return s.baseLr;
  const p = Math.min(1, Math.max(0, (step - s.warmupSteps) / (s.totalSteps - s.warmupSteps)));
  const span = s.baseLr - s.minLr;
  return s.decay === LrDecay.Poly ? s.minLr + span * (1 - p) ** s.power : s.minLr + (span * (1 + Math.cos(Math.PI * p))) / 2;
}
