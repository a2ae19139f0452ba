/**
 * Appearance shifts of whole volumes: the simulated domain shift that turns a
 * SOURCE volume into a pseudo-target with known labels, and the
 * appearance-translated view of the `consensus` baseline.
 *
 * One random chain (intensity curve — often non-monotonic, so tissue contrast
 * order changes as between CT and MR — gamma, contrast, bias field, blur,
 * noise) is drawn per volume and applied to every axial slice, so the shift is
 * consistent within a volume. Images `[z, y, x]` in [0, 1].
 */
import { randomAppearance, type AppearanceOptions } from '@purify/imaging';
import { Rng } from '@purify/imaging';
import type { SliceVolume } from '@purify/training';

/** Strong, domain-like shifts (simulated-shift episodes). */
export const SIMULATED_SHIFT: AppearanceOptions = Object.freeze({
  pCurve: 1,
  pNonMonotonic: 0.7,
  pGamma: 0.5,
  gammaRange: [0.6, 1.6] as const,
  pContrast: 0.5,
  contrastRange: [0.7, 1.3] as const,
  pBias: 0.5,
  biasStrength: 0.3,
  pBlur: 0.2,
  blurSigmaRange: [0.5, 1.0] as const,
  pNoise: 0.5,
  noiseSigmaRange: [0, 0.05] as const,
});

/**
 * The simulated shift at a severity in [0, 1] (0.5 is about as strong as
 * {@link SIMULATED_SHIFT});
 * higher severities draw non-monotonic curves more often and stronger gamma,
 * contrast, bias field, blur and noise, so the teacher errs more on the
 * pseudo-targets. The loop sets the severity without target labels (see
 * {@link nextSeverity}).
 */
export function simulatedShift(severity: number): AppearanceOptions {
  const s = Math.min(1, Math.max(0, severity));
  const lerp = (lo: number, hi: number): number => lo + (hi - lo) * s;
  return {
    pCurve: 1,
    pNonMonotonic: lerp(0.4, 1),
    pGamma: lerp(0.3, 0.7),
    gammaRange: [lerp(0.8, 0.45), lerp(1.25, 2.2)] as const,
    pContrast: 0.5,
    contrastRange: [lerp(0.85, 0.55), lerp(1.15, 1.45)] as const,
    pBias: lerp(0.3, 0.7),
    biasStrength: lerp(0.2, 0.4),
    pBlur: lerp(0, 0.4),
    blurSigmaRange: [0.5, lerp(0.75, 1.5)] as const,
    pNoise: lerp(0.3, 0.7),
    noiseSigmaRange: [0, lerp(0.025, 0.1)] as const,
  };
}

/**
 * One step of the label-free severity controller: the simulated pseudo-targets
 * should be as hard for the teacher as the real target images, measured by the
 * same label-free statistic on both (the mean region reliability score). When
 * the pseudo-targets look more reliable than the target, the shift gets
 * stronger, and weaker when they look less reliable:
 * `s' = clamp(s + gain · (simulated − target), 0, 1)`.
 */
export function nextSeverity(severity: number, simulatedReliability: number, targetReliability: number, gain = 4): number {
  if (!Number.isFinite(simulatedReliability) || !Number.isFinite(targetReliability)) return severity;
  return Math.min(1, Math.max(0, severity + gain * (simulatedReliability - targetReliability)));
}

/** Milder translation for the `consensus` view (monotonic curves, gamma, contrast). */
export const CONSENSUS_VIEW: AppearanceOptions = Object.freeze({
  pCurve: 0.7,
  pNonMonotonic: 0,
  pGamma: 0.7,
  gammaRange: [0.7, 1.4] as const,
  pContrast: 0.5,
  contrastRange: [0.8, 1.2] as const,
  pBias: 0.3,
  biasStrength: 0.2,
  pBlur: 0,
  pNoise: 0,
});

/** The volume's image with one appearance chain (drawn from `seed`) applied to every slice; geometry and labels kept. */
export function shiftVolume(volume: SliceVolume, seed: number, options: AppearanceOptions, id = volume.id): SliceVolume {
  const [z, h, w] = volume.shape;
  const image = new Float32Array(volume.image.length);
  for (let s = 0; s < z; s++) {
    // The same seed for every slice: the same curve, gamma and contrast throughout the volume.
    const out = randomAppearance({ data: volume.image.subarray(s * h * w, (s + 1) * h * w), shape: [h, w] }, new Rng(seed), options);
    image.set(out.data, s * h * w);
  }
  return { ...volume, id, image };
}
