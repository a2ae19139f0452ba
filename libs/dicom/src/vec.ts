/** Small 3-vector helpers (LPS millimetres). */
export type V3 = [number, number, number];

export const dot = (a: readonly number[], b: readonly number[]): number => (a[0] as number) * (b[0] as number) + (a[1] as number) * (b[1] as number) + (a[2] as number) * (b[2] as number);
export const sub = (a: readonly number[], b: readonly number[]): V3 => [(a[0] as number) - (b[0] as number), (a[1] as number) - (b[1] as number), (a[2] as number) - (b[2] as number)];
export const scale = (a: readonly number[], s: number): V3 => [(a[0] as number) * s, (a[1] as number) * s, (a[2] as number) * s];
export const add = (a: readonly number[], b: readonly number[]): V3 => [(a[0] as number) + (b[0] as number), (a[1] as number) + (b[1] as number), (a[2] as number) + (b[2] as number)];
export const norm = (a: readonly number[]): number => Math.sqrt(dot(a, a));
export const cross = (a: readonly number[], b: readonly number[]): V3 => [
  (a[1] as number) * (b[2] as number) - (a[2] as number) * (b[1] as number),
  (a[2] as number) * (b[0] as number) - (a[0] as number) * (b[2] as number),
  (a[0] as number) * (b[1] as number) - (a[1] as number) * (b[0] as number),
];
/** Column k of a row-major 3x3 matrix. */
export const column = (m: readonly number[], k: number): V3 => [m[k] as number, m[3 + k] as number, m[6 + k] as number];

/** A number for DS attributes: at most 16 characters, as PS3.5 requires. */
export function ds(value: number): number {
  if (Object.is(value, -0) || Math.abs(value) < 1e-12) return 0;
  for (let digits = 14; digits >= 1; digits--) {
    const s = String(Number(value.toPrecision(digits)));
    if (s.length <= 16) return Number(s);
  }
  return Number(value.toExponential(6));
}
