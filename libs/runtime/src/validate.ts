import { DType, type ModelRef, type PolicyRef, type VolumeHeader } from '@purify/proto';
import { PurifyError } from './errors';

/**
 * Request validation. Every check throws INVALID_ARGUMENT naming the field as
 * the client sees it (proto field names) and the value received.
 */

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `[${value.join(', ')}]`;
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value);
}

export function invalid(field: string, expected: string, received: unknown): PurifyError {
  return PurifyError.invalidArgument(`\`${field}\` ${expected}, got ${show(received)}`);
}

/** Returns `value` when it is set; throws naming `field` otherwise. */
export function required<T>(value: T | undefined | null, field: string): T {
  if (value === undefined || value === null) throw invalid(field, 'is required', value);
  return value;
}

/** A non-empty string of printable characters, at most `maxLength` long. */
export function nonEmptyString(value: string, field: string, maxLength = 256): string {
  if (value.length === 0 || value.length > maxLength || /[\u0000-\u001f]/.test(value)) {
    throw invalid(field, `must be a non-empty string of at most ${maxLength} printable characters`, value);
  }
  return value;
}

/** A name usable as a folder and registry key: letters, digits, `.`, `_`, `-`. */
export function identifier(value: string, field: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(value) || value.includes('..')) {
    throw invalid(field, 'must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters)', value);
  }
  return value;
}

export function finiteNumber(value: number, field: string, min = -Infinity, max = Infinity): number {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw invalid(field, `must be a finite number in [${min}, ${max}]`, value);
  }
  return value;
}

export function modelRef(ref: ModelRef | undefined, field: string): ModelRef {
  const r = required(ref, field);
  identifier(r.name, `${field}.name`);
  return r;
}

export function policyRef(ref: PolicyRef | undefined, field: string): PolicyRef {
  const r = required(ref, field);
  identifier(r.name, `${field}.name`);
  return r;
}

/** Bytes per voxel of each wire dtype. */
export const DTYPE_BYTES: Readonly<Partial<Record<DType, number>>> = {
  [DType.DTYPE_UINT8]: 1,
  [DType.DTYPE_INT16]: 2,
  [DType.DTYPE_UINT16]: 2,
  [DType.DTYPE_INT32]: 4,
  [DType.DTYPE_FLOAT32]: 4,
  [DType.DTYPE_FLOAT64]: 8,
};

/**
 * Checks a streamed volume's header and returns its byte size. `maxBytes` is the
 * configured per-volume limit.
 */
export function volumeHeader(header: VolumeHeader | undefined, field: string, maxBytes: number): number {
  const h = required(header, field);
  const shape = h.shapeZyx;
  if (shape.length !== 3 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw invalid(`${field}.shape_zyx`, 'must have 3 positive dims [z, y, x]', shape);
  }
  const spacing = h.spacingXyzMm;
  if (spacing.length !== 3 || spacing.some((s) => !Number.isFinite(s) || s <= 0)) {
    throw invalid(`${field}.spacing_xyz_mm`, 'must have 3 finite positive values (mm)', spacing);
  }
  if (h.originLpsMm.length !== 3 || h.originLpsMm.some((o) => !Number.isFinite(o))) {
    throw invalid(`${field}.origin_lps_mm`, 'must have 3 finite values (mm)', h.originLpsMm);
  }
  if (h.directionLps.length !== 9 || !isOrthonormal(h.directionLps)) {
    throw invalid(`${field}.direction_lps`, 'must be 9 values of an orthonormal row-major 3x3 matrix', h.directionLps);
  }
  const bytesPerVoxel = DTYPE_BYTES[h.dtype];
  if (bytesPerVoxel === undefined) {
    throw invalid(`${field}.dtype`, `must be one of ${Object.keys(DTYPE_BYTES).map((d) => DType[Number(d)]).join(', ')}`, DType[h.dtype] ?? h.dtype);
  }
  const bytes = shape.reduce((a, b) => a * b, 1) * bytesPerVoxel;
  if (bytes > maxBytes) {
    throw invalid(field, `must hold at most ${maxBytes} bytes of voxels (the configured limit)`, `${bytes} bytes for shape [${shape.join(', ')}]`);
  }
  return bytes;
}

function isOrthonormal(m: readonly number[], tolerance = 1e-4): boolean {
  if (m.some((v) => !Number.isFinite(v))) return false;
  for (let a = 0; a < 3; a++) {
    for (let b = 0; b < 3; b++) {
      let dot = 0;
      for (let r = 0; r < 3; r++) dot += (m[r * 3 + a] as number) * (m[r * 3 + b] as number);
      if (Math.abs(dot - (a === b ? 1 : 0)) > tolerance) return false;
    }
  }
  return true;
}
