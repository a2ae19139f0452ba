/**
 * Pseudo-labels from appearance views: the teacher predicts a target volume
 * as it is and under `count − 1` appearance views drawn from the augmentation
 * family the source model was trained with (no spatial part, so predictions
 * need no warping back; class-wise views remap by the clean prediction, never
 * by a label). Averaging the softmax outputs keeps what the teacher predicts
 * under every look of the organ and drops what one particular appearance —
 * the target's own — misleads it into. Label-free.
 */
import { Rng } from '@purify/imaging';
import { AUGMENT_PRESETS, augmentSample, type AugmentLevel, type SliceVolume } from '@purify/training';
import { AdaptationConfigError } from './errors';

/**
 * `count − 1` appearance views of `volume` (images in [0, 1]; geometry kept),
 * one draw of the preset's appearance chain per slice, seeded by `seed`.
 * `label` `[z, h, w]` is the class map the class-wise remapping uses (the
 * teacher's clean prediction).
 */
export function appearanceViews(volume: SliceVolume, label: Uint8Array, count: number, seed: number, augment: AugmentLevel): SliceVolume[] {
  if (!Number.isInteger(count) || count < 1 || count > 64) throw new AdaptationConfigError('pseudo_label_views', `pseudo-label views must be an integer in [1, 64], got ${count}`);
  const [z, h, w] = volume.shape;
  const n = h * w;
  if (label.length !== z * n) throw new AdaptationConfigError('pseudo_label_views', `the class map has ${label.length} pixels, volume ${volume.id} has ${z * n}`);
  // Every view draws an appearance change of the preset's family (none for a preset without appearance changes).
  const preset = AUGMENT_PRESETS[augment].config;
  const config = { ...preset, pSpatial: 0, pAppearance: preset.pAppearance > 0 ? 1 : 0 };
  const rng = new Rng(seed);
  const ones = new Float32Array(n).fill(1);
  const views: SliceVolume[] = [];
  for (let v = 1; v < count; v++) {
    const image = new Float32Array(volume.image.length);
    for (let s = 0; s < z; s++) {
      const out = augmentSample({ image: volume.image.subarray(s * n, (s + 1) * n), label: Int32Array.from(label.subarray(s * n, (s + 1) * n)), weight: ones }, [h, w], config, rng);
      image.set(out.image, s * n);
    }
    views.push({ ...volume, id: `${volume.id}~view${v}`, image });
  }
  return views;
}

/** The element-wise mean of equally long probability arrays (any layout). */
export function meanProbabilities(list: readonly Float32Array[]): Float32Array {
  const first = list[0];
  if (first === undefined) throw new AdaptationConfigError('pseudo_label_views', 'no predictions to average');
  const out = new Float32Array(first.length);
  for (const p of list) {
    if (p.length !== out.length) throw new AdaptationConfigError('pseudo_label_views', `predictions of ${p.length} and ${out.length} values cannot be averaged`);
    for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + (p[i] as number);
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / list.length;
  return out;
}
