/**
 * The one error type of @purify/metrics: bad input (mismatched grids, bad
 * spacing, non-integer labels, inconsistent results given to the accumulator).
 * The message names the problem and the values received.
 */
export class MetricsError extends Error {
  override readonly name = 'MetricsError';
}
