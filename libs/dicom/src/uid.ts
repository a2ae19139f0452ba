/**
 * DICOM UIDs under the 2.25 root (PS3.5 §B.2: a UUID as one decimal integer),
 * which needs no registered organisation root.
 */
import { createHash, randomBytes } from 'node:crypto';

function uidFromBytes(bytes: Uint8Array): string {
  // 128 bits → decimal; at most 39 digits, so "2.25." + digits ≤ 44 < 64 characters.
  let value = 0n;
  for (const b of bytes.subarray(0, 16)) value = (value << 8n) | BigInt(b);
  return `2.25.${value.toString()}`;
}

/** A fresh random UID. */
export function randomUid(): string {
  return uidFromBytes(randomBytes(16));
}

/**
 * A UID determined by `parts` (SHA-256 of the parts, truncated to 128 bits):
 * the same inputs always give the same UID, which makes re-runs idempotent
 * (the SEG of a series by a model version has one SOP Instance UID).
 */
export function derivedUid(...parts: readonly string[]): string {
  return uidFromBytes(createHash('sha256').update(parts.join('\u0000')).digest());
}

/** True for a syntactically valid UID: ≤ 64 chars, dot-separated numbers without leading zeros. */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/.test(uid);
}
