import { createHash } from 'node:crypto';
import { InvalidArgumentError } from 'commander';
import { parseAugmentLevel, TrainingConfigError, type AugmentLevel } from '@purify/training';

/** A failure the user can act on; printed as one line without a stack. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** commander option parser for one of the keys of `choices` (a name → value table). */
export function choiceArg<K extends string>(choices: Readonly<Record<K, unknown>>): (raw: string) => K {
  const names = Object.keys(choices);
  return (raw) => {
    if (!names.includes(raw)) throw new InvalidArgumentError(`expected one of ${names.join(', ')}, got "${raw}"`);
    return raw as K;
  };
}

/** commander option parser for an integer in [min, max]. */
export function intArg(min: number, max: number): (raw: string) => number {
  return (raw) => {
    const n = /^-?\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`must be an integer in [${min}, ${max}], got "${raw}"`);
    }
    return n;
  };
}

/** A commander parser for a finite number in [min, max] (an open end when `exclusive` names it). */
export function numberArg(min: number, max: number, exclusive: { min?: boolean; max?: boolean } = {}): (raw: string) => number {
  const range = `${exclusive.min === true ? '(' : '['}${min}, ${max}${exclusive.max === true ? ')' : ']'}`;
  return (raw) => {
    const n = raw.trim() === '' ? Number.NaN : Number(raw);
    const ok = Number.isFinite(n) && (exclusive.min === true ? n > min : n >= min) && (exclusive.max === true ? n < max : n <= max);
    if (!ok) throw new InvalidArgumentError(`must be a number in ${range}, got "${raw}"`);
    return n;
  };
}

/** A commander parser for an augmentation preset, `name` or `name@version` (the list: docs/training.md). */
export function augmentArg(raw: string): AugmentLevel {
  try {
    return parseAugmentLevel(raw.trim());
  } catch (err) {
    if (err instanceof TrainingConfigError) throw new InvalidArgumentError(err.message);
    throw err;
  }
}

/** Prints `value` as JSON (for --json) or the human lines. */
export function output(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/** Left-aligned text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/**
 * An opaque, non-identifying case key for the contract's `case_id`: `prefix-`
 * and the first 16 hex digits of SHA-256(key). File names and DICOM UIDs can
 * identify a patient, so neither leaves the CLI as is (docs/deploying.md,
 * "Patient data"). Deterministic: the same key always gets the same id.
 */
export function opaqueCaseId(prefix: string, key: string): string {
  return `${prefix}-${createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 16)}`;
}
