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
