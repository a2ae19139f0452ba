/**
 * Typed accessors for naturalized dcmjs datasets. Every accessor names the
 * attribute and the dataset's source in its error, so messages read
 * "<file>: ImageOrientationPatient must be 6 numbers, got [1, 0, 0]".
 */
import { DicomError, DicomErrorKind } from './errors';
import type { Naturalized } from './dcmjs';

/** A value, or the first of a multi-valued attribute. */
function first(value: unknown): unknown {
  return Array.isArray(value) ? (value as unknown[])[0] : value;
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '' && !(Array.isArray(value) && value.length === 0);
}

export function optString(ds: Naturalized, keyword: string): string | undefined {
  const v = first(ds[keyword]);
  if (!present(v)) return undefined;
  if (typeof v === 'object' && v !== null && 'Alphabetic' in v) return String(v.Alphabetic);
  return String(v).trim();
}

export function reqString(ds: Naturalized, keyword: string, source: string): string {
  const v = optString(ds, keyword);
  if (v === undefined || v === '') throw new DicomError(DicomErrorKind.BadAttribute, `${source}: ${keyword} is missing`);
  return v;
}

/** All values of a multi-valued string attribute (ImageType …); [] when absent. */
export function strings(ds: Naturalized, keyword: string): string[] {
  const v = ds[keyword];
  if (!present(v)) return [];
  return (Array.isArray(v) ? (v as unknown[]) : String(v).split('\\')).map((s) => String(s).trim().toUpperCase());
}

export function optNumber(ds: Naturalized, keyword: string, source: string): number | undefined {
  const v = first(ds[keyword]);
  if (!present(v)) return undefined;
  const n = typeof v === 'number' ? v : Number(String(v).trim());
  if (!Number.isFinite(n)) throw new DicomError(DicomErrorKind.BadAttribute, `${source}: ${keyword} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

export function reqNumber(ds: Naturalized, keyword: string, source: string): number {
  const n = optNumber(ds, keyword, source);
  if (n === undefined) throw new DicomError(DicomErrorKind.BadAttribute, `${source}: ${keyword} is missing`);
  return n;
}

/** A multi-valued numeric attribute with exactly `count` finite values. */
export function reqNumbers(ds: Naturalized, keyword: string, count: number, source: string): number[] {
  const v = ds[keyword];
  if (!present(v)) throw new DicomError(DicomErrorKind.BadAttribute, `${source}: ${keyword} is missing`);
  const raw = Array.isArray(v) ? (v as unknown[]) : String(v).split('\\');
  const values = raw.map((x) => (typeof x === 'number' ? x : Number(String(x).trim())));
  if (values.length !== count || values.some((x) => !Number.isFinite(x))) {
    throw new DicomError(DicomErrorKind.BadAttribute, `${source}: ${keyword} must be ${count} numbers, got [${raw.map((x) => String(x)).join(', ')}]`);
  }
  return values;
}

/** Items of a sequence attribute; [] when absent. */
export function items(ds: Naturalized, keyword: string): Naturalized[] {
  const v = ds[keyword];
  if (!present(v)) return [];
  return (Array.isArray(v) ? v : [v]) as Naturalized[];
}

/** The single item of a sequence that must have one. */
export function item(ds: Naturalized, keyword: string, source: string): Naturalized {
  const list = items(ds, keyword);
  const it = list[0];
  if (it === undefined) throw new DicomError(DicomErrorKind.BadAttribute, `${source}: ${keyword} is missing or empty`);
  return it;
}
