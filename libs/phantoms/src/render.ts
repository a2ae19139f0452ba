import { makeVolume, type Rng, type Volume } from '@purify/imaging';
import { organOf, tissueAt, Tissue, TISSUE_COUNT, type Anatomy } from './anatomy';

/**
 * Renders one case's anatomy into a label map and a domain-specific image.
 *
 * Grids are axial: arrays [z, y, x], identity direction (LPS), the body centre
 * at world (0, 0, 0) in the middle of the grid. Images are int16: HU for `ct`
 * and `cbct`, arbitrary MR units (0–4095) for `mr`.
 */

export const Domain = { CT: 'ct', MR: 'mr', CBCT: 'cbct' } as const;
export type Domain = (typeof Domain)[keyof typeof Domain];
export const DOMAINS: readonly Domain[] = [Domain.CT, Domain.MR, Domain.CBCT];

export interface GridSpec {
  /** In-plane size (x = y), pixels. */
  size: number;
  /** Number of axial slices (of the CT grid; MR uses thicker, fewer slices). */
  slices: number;
  /** Field of view across, mm (in-plane spacing = fov / size). */
  fovMm: number;
  /** Slice spacing of the CT grid, mm. */
  sliceMm: number;
}

export const DEFAULT_GRID: GridSpec = { size: 96, slices: 32, fovMm: 384, sliceMm: 6 };

/** MR slices are this much thicker than CT slices (lower through-plane resolution). */
export const MR_SLICE_FACTOR = 1.5;

/** Mean intensity of each tissue per domain (HU for CT/CBCT, MR units for MR). */
const BASE_MEANS: Readonly<Record<Domain, readonly number[]>> = (() => {
  const ct = new Array<number>(TISSUE_COUNT);
  ct[Tissue.Air] = -1000;
  ct[Tissue.Liver] = 100;
  ct[Tissue.Spleen] = 118;
  ct[Tissue.RightKidney] = 175;
  ct[Tissue.LeftKidney] = 175;
  ct[Tissue.RightKidneyMedulla] = 125;
  ct[Tissue.LeftKidneyMedulla] = 125;
  ct[Tissue.Fat] = -95;
  ct[Tissue.Muscle] = 52;
  ct[Tissue.CorticalBone] = 750;
  ct[Tissue.Marrow] = 260;
  ct[Tissue.Aorta] = 165;
  ct[Tissue.StomachFluid] = 15;
  ct[Tissue.Gas] = -900;
  ct[Tissue.Bowel] = 40;
  // Fat-suppressed T2 (T2-SPIR, the abdominal MR of CHAOS): fluid bright, spleen
  // and kidneys far brighter than the liver, muscle darker than the liver, flow
  // void in the aorta, dark cortical bone, fat and marrow fat suppressed — a
  // different ordering than CT. Fat is suppressed rather than T2-bright because
  // with bright fat no CT model finds the MR organs at all (measured: source-only
  // organ Dice 0.11 against 0.40 suppressed), and pseudo-label purification can
  // only help where the source model finds something (DESIGN.md §4, stage A).
  const mr = new Array<number>(TISSUE_COUNT);
  mr[Tissue.Air] = 8;
  mr[Tissue.Liver] = 300;
  mr[Tissue.Spleen] = 560;
  mr[Tissue.RightKidney] = 640;
  mr[Tissue.LeftKidney] = 640;
  mr[Tissue.RightKidneyMedulla] = 820;
  mr[Tissue.LeftKidneyMedulla] = 820;
  mr[Tissue.Fat] = 120;
  mr[Tissue.Muscle] = 190;
  mr[Tissue.CorticalBone] = 40;
  mr[Tissue.Marrow] = 200;
  mr[Tissue.Aorta] = 50;
  mr[Tissue.StomachFluid] = 980;
  mr[Tissue.Gas] = 8;
  mr[Tissue.Bowel] = 380;
  return { ct, mr, cbct: ct };
})();

/**
 * CBCT acquisition effects (generator v3). CBCT numbers are not calibrated HU:
 * scatter and the reconstruction shift the whole scan, by an amount that depends
 * on the patient and the scan, here −120 to −50 HU. Against the abdominal window
 * that moves every tissue, so a CT model reads CBCT liver as CT muscle, while
 * the contrast between organs (what a model trained on CBCT needs) is kept.
 * v2 instead compressed soft-tissue contrast by 0.55 with noise σ 30 HU and
 * streaks σ 55 HU; a supervised model then reached only 0.83–0.88 organ Dice
 * (README, "Generator versions").
 */
const CBCT = {
  calibrationOffsetHu: [-120, -50] as [number, number],
  noiseSigmaHu: 20,
  streakSigmaHu: 27.5,
  hazeHu: 35,
} as const;

/** Sum of random plane waves, normalised to roughly [-1, 1]: a smooth field over the body. */
function smoothField(rng: Rng, terms: number, minWavelengthMm: number, maxWavelengthMm: number) {
  const waves = Array.from({ length: terms }, () => {
    const wavelength = rng.uniform(minWavelengthMm, maxWavelengthMm);
    const a = rng.uniform(0, 2 * Math.PI);
    const b = rng.uniform(-0.5, 0.5);
    const k = (2 * Math.PI) / wavelength;
    return { kx: k * Math.cos(a) * Math.cos(b), ky: k * Math.sin(a) * Math.cos(b), kz: k * Math.sin(b), phase: rng.uniform(0, 2 * Math.PI) };
  });
  const norm = 1 / Math.sqrt(terms / 2);
  return (x: number, y: number, z: number): number => {
    let v = 0;
    for (const w of waves) v += Math.sin(w.kx * x + w.ky * y + w.kz * z + w.phase);
    return v * norm;
  };
}

export interface RenderedCase {
  image: Volume<Int16Array>;
  labels: Volume<Uint8Array>;
  /** Tissue class per voxel (centre sample), for statistics. */
  tissue: Uint8Array;
}

/** Geometry of a domain's grid. */
export function domainGrid(domain: Domain, grid: GridSpec): { shape: [number, number, number]; spacingXyzMm: [number, number, number] } {
  const inPlane = grid.fovMm / grid.size;
  const sliceMm = domain === Domain.MR ? grid.sliceMm * MR_SLICE_FACTOR : grid.sliceMm;
  const slices = domain === Domain.MR ? Math.max(1, Math.round(grid.slices / MR_SLICE_FACTOR)) : grid.slices;
  return { shape: [slices, grid.size, grid.size], spacingXyzMm: [inPlane, inPlane, sliceMm] };
}

/** Renders `anatomy` in `domain` on the grid; `rng` draws the case's appearance. */
export function renderCase(anatomy: Anatomy, domain: Domain, grid: GridSpec, rng: Rng): RenderedCase {
  const { shape, spacingXyzMm } = domainGrid(domain, grid);
  const [nz, ny, nx] = shape;
  const [sx, sy, sz] = spacingXyzMm;
  const origin: [number, number, number] = [(-(nx - 1) / 2) * sx, (-(ny - 1) / 2) * sy, (-(nz - 1) / 2) * sz];

  // Per-case appearance: each tissue's mean jitters a little from case to case.
  const jitter = domain === Domain.MR ? 0.08 : 0.0;
  const means = BASE_MEANS[domain].map((m, t) => (t === Tissue.Air ? m : domain === Domain.MR ? m * rng.normal(1, jitter) : m + rng.normal(0, 10)));
  const texture = smoothField(rng, 6, 12, 40);
  const bias = smoothField(rng, 4, 250, 600);
  const haze = smoothField(rng, 4, 150, 400);
  // Partial-volume sub-slices for thick MR slices (fractions of the slice thickness).
  const subSlices = domain === Domain.MR ? [-1 / 3, 0, 1 / 3] : [0];

  // CBCT: streaks radiate from the spine and from gas; field of view is truncated.
  const streaks = Array.from({ length: 8 }, () => ({
    x: rng.bool(0.6) ? anatomy.spine.x : rng.uniform(-60, 60),
    y: rng.bool(0.6) ? anatomy.spine.y : rng.uniform(-80, -20),
    angle: rng.uniform(0, Math.PI),
    amplitude: rng.normal(0, CBCT.streakSigmaHu),
    width: rng.uniform(2, 5),
  }));
  const fovRadius = rng.uniform(140, 165);
  const cupping = rng.uniform(50, 90);
  // Drawn last and for CBCT only, so the ct and mr appearances stay those of generator v2.
  const calibrationOffset = domain === Domain.CBCT ? rng.uniform(...CBCT.calibrationOffsetHu) : 0;

  const n = nx * ny * nz;
  const image = new Int16Array(n);
  const labels = new Uint8Array(n);
  const tissue = new Uint8Array(n);
  for (let k = 0; k < nz; k++) {
    const z = origin[2] + k * sz;
    for (let j = 0; j < ny; j++) {
      const y = origin[1] + j * sy;
      for (let i = 0; i < nx; i++) {
        const x = origin[0] + i * sx;
        const idx = (k * ny + j) * nx + i;
        let value = 0;
        for (const f of subSlices) {
          const t = tissueAt(anatomy, x, y, z + f * sz);
          if (f === 0) {
            tissue[idx] = t;
            labels[idx] = organOf(t);
          }
          const m = means[t] ?? 0;
          value += t === Tissue.Air || t === Tissue.Gas ? m : domain === Domain.MR ? m * (1 + 0.05 * texture(x, y, z)) : m + 7 * texture(x, y, z);
        }
        value /= subSlices.length;
        image[idx] = finishVoxel(domain, value, x, y, z, { bias, haze, streaks, fovRadius, cupping, calibrationOffset, rng });
      }
    }
  }
  const geometry = { spacingXyzMm, originLpsMm: origin };
  return { image: makeVolume(image, shape, geometry), labels: makeVolume(labels, shape, geometry), tissue };
}

interface Effects {
  bias: (x: number, y: number, z: number) => number;
  haze: (x: number, y: number, z: number) => number;
  streaks: { x: number; y: number; angle: number; amplitude: number; width: number }[];
  fovRadius: number;
  cupping: number;
  calibrationOffset: number;
  rng: Rng;
}

/** Domain-specific acquisition effects and noise for one voxel; returns the stored int16. */
function finishVoxel(domain: Domain, clean: number, x: number, y: number, z: number, e: Effects): number {
  switch (domain) {
    case Domain.CT:
      return clamp(Math.round(clean + e.rng.normal(0, 12)), -1024, 3071);
    case Domain.MR: {
      // Smooth multiplicative bias field, then Rician noise (magnitude of complex Gaussian).
      const s = clean * Math.exp(0.15 * e.bias(x, y, z));
      const sigma = 22;
      const re = s + e.rng.normal(0, sigma);
      const im = e.rng.normal(0, sigma);
      return clamp(Math.round(Math.hypot(re, im)), 0, 4095);
    }
    case Domain.CBCT: {
      const r = Math.hypot(x, y);
      if (r > e.fovRadius) return -1000; // outside the reconstructed field of view
      // Cupping (centre darker), scatter-like haze, streaks from dense objects and gas.
      let v = clean - e.cupping * (1 - (r / e.fovRadius) ** 2);
      v += CBCT.hazeHu * e.haze(x, y, z);
      for (const s of e.streaks) {
        const dx = x - s.x;
        const dy = y - s.y;
        const perp = Math.abs(-Math.sin(s.angle) * dx + Math.cos(s.angle) * dy);
        v += s.amplitude * Math.exp(-((perp / s.width) ** 2));
      }
      // Uncalibrated numbers: the whole scan sits lower than CT HU, by an amount that varies per scan.
      v += e.calibrationOffset;
      return clamp(Math.round(v + e.rng.normal(0, CBCT.noiseSigmaHu)), -1024, 3071);
    }
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
