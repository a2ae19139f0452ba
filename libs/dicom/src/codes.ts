/**
 * Coded concepts for the segments we write (PS3.16). Organs are SNOMED CT
 * body structures in the "Anatomical Structure" category (SCT 123037004), the
 * pairing 3D Slicer, highdicom and TotalSegmentator's DICOM export use:
 *
 *   liver         SCT 10200004  "Liver"
 *   spleen        SCT 78961009  "Spleen"
 *   right kidney  SCT 9846003   "Right kidney"  (Right kidney structure)
 *   left kidney   SCT 18639004  "Left kidney"   (Left kidney structure)
 *
 * The kidneys use SNOMED's pre-coordinated lateral concepts; DICOM's CID 7166
 * style alternative — SCT 64033007 "Kidney" with a laterality modifier — is
 * equivalent, and readers that know either understand both.
 */
import { DicomError, DicomErrorKind } from './errors';
import type { Code } from './sop';

export const ANATOMICAL_STRUCTURE: Code = { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' };

export const OrganCode = {
  liver: { value: '10200004', scheme: 'SCT', meaning: 'Liver' },
  spleen: { value: '78961009', scheme: 'SCT', meaning: 'Spleen' },
  right_kidney: { value: '9846003', scheme: 'SCT', meaning: 'Right kidney' },
  left_kidney: { value: '18639004', scheme: 'SCT', meaning: 'Left kidney' },
} as const satisfies Record<string, Code>;
export type OrganName = keyof typeof OrganCode;

/** Algorithm family of our segmentations: DCM 123110 "Artificial Intelligence" (CID 7162). */
export const ARTIFICIAL_INTELLIGENCE: Code = { value: '123110', scheme: 'DCM', meaning: 'Artificial Intelligence' };
/** Purpose of reference of a segmentation's source image (CID 7202): DCM 121322. */
export const SOURCE_IMAGE_PURPOSE: Code = { value: '121322', scheme: 'DCM', meaning: 'Source image for image processing operation' };
/** Derivation of a segmentation (CID 7203): DCM 113076 "Segmentation". */
export const SEGMENTATION_DERIVATION: Code = { value: '113076', scheme: 'DCM', meaning: 'Segmentation' };

/** One segment: which label value of the label map it is, and what it is. */
export interface SegmentDefinition {
  /** Voxel value in the label map (1–255). */
  readonly labelValue: number;
  /** SegmentLabel, e.g. "Liver" (≤ 64 characters). */
  readonly label: string;
  readonly category: Code;
  readonly type: Code;
  /** SegmentDescription. */
  readonly description?: string;
  /** Display colour as sRGB 0–255 (written as RecommendedDisplayCIELabValue). */
  readonly rgb?: readonly [number, number, number];
}

/**
 * The segments of the built-in benchmark's label maps (OrganLabel in
 * @purify/phantoms: 1 liver, 2 spleen, 3 right kidney, 4 left kidney).
 */
export const PHANTOM_SEGMENTS: readonly SegmentDefinition[] = [
  { labelValue: 1, label: 'Liver', category: ANATOMICAL_STRUCTURE, type: OrganCode.liver, rgb: [221, 130, 101] },
  { labelValue: 2, label: 'Spleen', category: ANATOMICAL_STRUCTURE, type: OrganCode.spleen, rgb: [157, 108, 162] },
  { labelValue: 3, label: 'Right kidney', category: ANATOMICAL_STRUCTURE, type: OrganCode.right_kidney, rgb: [185, 102, 83] },
  { labelValue: 4, label: 'Left kidney', category: ANATOMICAL_STRUCTURE, type: OrganCode.left_kidney, rgb: [185, 102, 83] },
];

/**
 * Segments for a label map described by name (e.g. a model's or dataset.json's
 * labels): known organ names get their codes; unknown names are refused, since
 * a segment must carry a coded property type.
 */
export function segmentsForLabels(labels: Readonly<Record<number, string>>): SegmentDefinition[] {
  const out: SegmentDefinition[] = [];
  for (const [value, rawName] of Object.entries(labels)) {
    const labelValue = Number(value);
    if (labelValue === 0) continue;
    const name = rawName.toLowerCase().replace(/[\s-]+/g, '_') as OrganName;
    const known = PHANTOM_SEGMENTS.find((s) => s.type === OrganCode[name]);
    if (!known) throw new DicomError(DicomErrorKind.Segmentation, `segmentsForLabels: label ${labelValue} "${rawName}" has no SNOMED CT code; known: ${Object.keys(OrganCode).join(', ')}`);
    out.push({ ...known, labelValue });
  }
  return out;
}

/** sRGB (0–255) → DICOM CIELab (PS3.3 C.10.7.1.1: L 0–100, a/b −128–127, scaled to 0–65535), D65. */
export function rgbToDicomLab(rgb: readonly [number, number, number]): [number, number, number] {
  const lin = rgb.map((c) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  const [r, g, b] = lin;
  const x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
  const y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  const z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
  const f = (t: number): number => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  const L = 116 * f(y) - 16;
  const A = 500 * (f(x) - f(y));
  const B = 200 * (f(y) - f(z));
  const clamp = (v: number): number => Math.max(0, Math.min(65535, Math.round(v)));
  return [clamp((L * 65535) / 100), clamp(((A + 128) * 65535) / 255), clamp(((B + 128) * 65535) / 255)];
}
