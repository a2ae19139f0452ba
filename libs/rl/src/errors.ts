/**
 * The error of the RL library for bad input: observations of the wrong width,
 * non-finite features or rewards, empty trajectories, invalid configuration,
 * corrupt serialized policies. The message names the field, what was expected
 * and what was received. Services map it to INVALID_ARGUMENT.
 */
export class RlError extends Error {
  override readonly name = 'RlError';
}

/** Formats a received value for an error message (numbers keep NaN/Infinity, strings are quoted). */
export function show(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return `[${value.map(show).join(', ')}]`;
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}
