import type { Rng } from '@purify/imaging';

/**
 * Random abdominal anatomy for the built-in benchmark.
 *
 * Coordinates are patient LPS millimetres relative to the body centre:
 * +x = patient left, +y = posterior, +z = superior. Every structure is a
 * deformed ellipsoid (optionally tapered); the whole body is warped by one
 * smooth displacement field per case. All randomness comes from the Rng passed
 * in, so a seed fixes a case completely.
 */

/** Organ labels written to label maps (0 = background). */
export const OrganLabel = { Background: 0, Liver: 1, Spleen: 2, RightKidney: 3, LeftKidney: 4 } as const;
export type OrganLabel = (typeof OrganLabel)[keyof typeof OrganLabel];

export const ORGAN_NAMES: Readonly<Record<number, string>> = {
  0: 'background',
  1: 'liver',
  2: 'spleen',
  3: 'right_kidney',
  4: 'left_kidney',
};

/**
 * Tissue classes the renderers give intensities to. Organ tissues come first so
 * that `tissue <= 4` is also the organ label.
 */
export const Tissue = {
  Air: 0,
  Liver: 1,
  Spleen: 2,
  RightKidney: 3,
  LeftKidney: 4,
  Fat: 5,
  Muscle: 6,
  CorticalBone: 7,
  Marrow: 8,
  Aorta: 9,
  StomachFluid: 10,
  Gas: 11,
  Bowel: 12,
  RightKidneyMedulla: 13,
  LeftKidneyMedulla: 14,
} as const;
export type Tissue = (typeof Tissue)[keyof typeof Tissue];
export const TISSUE_COUNT = 15;

export const TISSUE_NAMES: readonly string[] = [
  'air', 'liver', 'spleen', 'right_kidney', 'left_kidney', 'fat', 'muscle', 'cortical_bone', 'marrow',
  'aorta', 'stomach_fluid', 'gas', 'bowel', 'right_kidney_medulla', 'left_kidney_medulla',
];

export type Vec3 = [number, number, number];

/** A deformed ellipsoid in body coordinates. */
export interface Blob {
  centre: Vec3;
  /** Semi-axes (x, y, z) in mm before rotation. */
  radii: Vec3;
  /** Rotation about z, radians. */
  yaw: number;
  /** Radial perturbation: sum of a·sin(m·θ + n·φ + phase) on the unit sphere. */
  ripples: { a: number; m: number; n: number; phase: number }[];
  /** Liver-like taper: radii in y and z shrink by this fraction toward +x. */
  taper: number;
  /** Distance (mm) from the centre beyond which no point is inside (a cheap pre-check). */
  bound: number;
}

export interface Anatomy {
  /** Body cross-section semi-axes (x, y) in mm at z = 0, and how they vary with z. */
  body: { ax: number; ay: number; slope: number; fatMm: number; muscleMm: number };
  liver: Blob;
  spleen: Blob;
  rightKidney: Blob;
  leftKidney: Blob;
  stomach: Blob;
  /** Bowel loops: small blobs, some holding gas. */
  bowel: { blob: Blob; gas: boolean }[];
  spine: { x: number; y: number; radius: number };
  aorta: { x: number; y: number; radius: number };
  /** Smooth displacement field: sum of amplitude·sin(k·p + phase) per axis. */
  warp: { k: Vec3; phase: number; amplitude: Vec3 }[];
}

function blob(rng: Rng, centre: Vec3, radii: Vec3, jitterMm: number, scaleSd: number, ripple: number, taper = 0): Blob {
  const s = Math.max(0.7, rng.normal(1, scaleSd));
  const r: Vec3 = [radii[0] * s * rng.normal(1, scaleSd / 2), radii[1] * s * rng.normal(1, scaleSd / 2), radii[2] * s * rng.normal(1, scaleSd / 2)];
  const ripples = Array.from({ length: 4 }, () => ({ a: rng.uniform(0, ripple), m: rng.int(1, 4), n: rng.int(1, 3), phase: rng.uniform(0, 2 * Math.PI) }));
  const bump = 1 + ripples.reduce((sum, w) => sum + w.a, 0);
  return {
    centre: [centre[0] + rng.normal(0, jitterMm), centre[1] + rng.normal(0, jitterMm), centre[2] + rng.normal(0, jitterMm)],
    radii: r,
    yaw: rng.normal(0, 0.12),
    ripples,
    taper,
    bound: (Math.max(...r) * bump) / (1 - taper) + 1,
  };
}

/** Samples one case's anatomy. */
export function sampleAnatomy(rng: Rng): Anatomy {
  const bodyScale = Math.max(0.8, rng.normal(1, 0.07));
  const anatomy: Anatomy = {
    body: { ax: 150 * bodyScale, ay: 108 * bodyScale, slope: rng.normal(0, 0.05), fatMm: rng.uniform(8, 24), muscleMm: rng.uniform(6, 12) },
    liver: blob(rng, [-55, -5, 35], [78, 72, 62], 6, 0.09, 0.07, 0.45),
    spleen: blob(rng, [78, 32, 45], [28, 46, 44], 5, 0.1, 0.08),
    rightKidney: blob(rng, [-50, 50, -4], [30, 24, 50], 5, 0.08, 0.05),
    leftKidney: blob(rng, [50, 50, 6], [30, 24, 50], 5, 0.08, 0.05),
    stomach: blob(rng, [40, -35, 50], [38, 28, 40], 8, 0.15, 0.1),
    bowel: Array.from({ length: rng.int(6, 11) }, () => ({
      blob: blob(rng, [rng.uniform(-70, 70), rng.uniform(-85, -20), rng.uniform(-90, 10)], [18, 14, 22], 4, 0.25, 0.15),
      gas: rng.bool(0.4),
    })),
    spine: { x: rng.normal(0, 3), y: 70 + rng.normal(0, 4), radius: rng.uniform(15, 20) },
    aorta: { x: 18 + rng.normal(0, 3), y: 42 + rng.normal(0, 3), radius: rng.uniform(9, 13) },
    warp: Array.from({ length: 3 }, () => {
      const wavelength = rng.uniform(150, 320);
      const dir = [rng.normal(), rng.normal(), rng.normal()];
      const norm = Math.hypot(dir[0] ?? 0, dir[1] ?? 0, dir[2] ?? 0) || 1;
      const k = dir.map((d) => ((2 * Math.PI) / wavelength) * (d / norm)) as Vec3;
      return { k, phase: rng.uniform(0, 2 * Math.PI), amplitude: [rng.normal(0, 4), rng.normal(0, 4), rng.normal(0, 3)] as Vec3 };
    }),
  };
  return anatomy;
}

/** Normalised radius of point p in a blob: < 1 inside. */
export function blobRadius(b: Blob, px: number, py: number, pz: number): number {
  const dx = px - b.centre[0];
  const dy = py - b.centre[1];
  const dz = pz - b.centre[2];
  if (Math.abs(dx) > b.bound || Math.abs(dy) > b.bound || Math.abs(dz) > b.bound) return Infinity;
  const c = Math.cos(b.yaw);
  const s = Math.sin(b.yaw);
  const lx = (c * dx + s * dy) / b.radii[0];
  let ly = (-s * dx + c * dy) / b.radii[1];
  let lz = dz / b.radii[2];
  if (b.taper > 0) {
    // Shrink toward +x (patient left): the liver's left lobe is thinner.
    const shrink = 1 - b.taper * Math.min(1, Math.max(0, (lx + 1) / 2));
    ly /= shrink;
    lz /= shrink;
  }
  const r = Math.sqrt(lx * lx + ly * ly + lz * lz);
  if (r === 0) return 0;
  const theta = Math.atan2(ly, lx);
  const phi = Math.acos(Math.max(-1, Math.min(1, lz / r)));
  let bump = 1;
  for (const w of b.ripples) bump += w.a * Math.sin(w.m * theta + w.n * phi + w.phase);
  return r / bump;
}

/**
 * Tissue class at body point p (mm, LPS relative to body centre), after the
 * case's warp. Priority resolves overlaps: bone and vessels first, then
 * kidneys, spleen, liver, stomach, bowel, muscle, fat.
 */
export function tissueAt(a: Anatomy, x0: number, y0: number, z0: number): Tissue {
  let x = x0;
  let y = y0;
  let z = z0;
  for (const w of a.warp) {
    const t = Math.sin(w.k[0] * x0 + w.k[1] * y0 + w.k[2] * z0 + w.phase);
    x += w.amplitude[0] * t;
    y += w.amplitude[1] * t;
    z += w.amplitude[2] * t;
  }
  const ax = a.body.ax * (1 + a.body.slope * (z / 100));
  const ay = a.body.ay * (1 + a.body.slope * (z / 100));
  const rb = Math.hypot(x / ax, y / ay);
  if (rb >= 1) return Tissue.Air;
  const depth = (1 - rb) * Math.min(ax, ay); // ~ mm from the skin
  if (depth < a.body.fatMm) return Tissue.Fat;
  if (depth < a.body.fatMm + a.body.muscleMm) return Tissue.Muscle;

  const ds = Math.hypot(x - a.spine.x, y - a.spine.y);
  if (ds < a.spine.radius) return ds > a.spine.radius - 3.5 ? Tissue.CorticalBone : Tissue.Marrow;
  // Posterior elements and paraspinal muscle behind the vertebral body.
  if (y > a.spine.y && Math.abs(x - a.spine.x) < 8) return Tissue.CorticalBone;
  if (y > a.spine.y - 5 && Math.abs(x - a.spine.x) < 45 && y < a.spine.y + 45) return Tissue.Muscle;
  if (Math.hypot(x - a.aorta.x, y - a.aorta.y) < a.aorta.radius) return Tissue.Aorta;
  // Psoas muscles beside the spine.
  if (Math.hypot((Math.abs(x - a.spine.x) - 32) / 14, (y - a.spine.y + 8) / 16) < 1 && z < 20) return Tissue.Muscle;

  const rk = blobRadius(a.rightKidney, x, y, z);
  if (rk < 1) return rk < 0.45 ? Tissue.RightKidneyMedulla : Tissue.RightKidney;
  const lk = blobRadius(a.leftKidney, x, y, z);
  if (lk < 1) return lk < 0.45 ? Tissue.LeftKidneyMedulla : Tissue.LeftKidney;
  if (blobRadius(a.spleen, x, y, z) < 1) return Tissue.Spleen;
  if (blobRadius(a.liver, x, y, z) < 1) return Tissue.Liver;
  const rs = blobRadius(a.stomach, x, y, z);
  if (rs < 1) return y < a.stomach.centre[1] - 0.55 * a.stomach.radii[1] ? Tissue.Gas : Tissue.StomachFluid;
  for (const loop of a.bowel) {
    const r = blobRadius(loop.blob, x, y, z);
    if (r < 1) return loop.gas && r < 0.6 ? Tissue.Gas : Tissue.Bowel;
  }
  return Tissue.Fat;
}

/** The organ label of a tissue (a kidney's medulla belongs to that kidney). */
export function organOf(t: Tissue): OrganLabel {
  if (t >= 1 && t <= 4) return t as OrganLabel;
  if (t === Tissue.RightKidneyMedulla) return OrganLabel.RightKidney;
  if (t === Tissue.LeftKidneyMedulla) return OrganLabel.LeftKidney;
  return OrganLabel.Background;
}
