import { RlError } from './errors';

/**
 * The policy file format, version 1 (all integers little-endian):
 *
 *   offset  size  field
 *   0       8     magic "PURIFYRL" (ASCII)
 *   8       4     format version (uint32) = 1
 *   12      4     header length H in bytes (uint32)
 *   16      4     CRC-32 (IEEE) of bytes [20, end)
 *   20      H     header: UTF-8 JSON (spec, normaliser, generator state, tensor list)
 *   20+H    …     tensor data: float32, the header's tensors in order, row-major
 *
 * JSON numbers round-trip float64 exactly, so the normaliser statistics are
 * stored there at full precision.
 */
export const POLICY_MAGIC = 'PURIFYRL';
export const POLICY_FORMAT_VERSION = 1;
const PREFIX_BYTES = 20;

export interface EncodedTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

export interface PolicyFile {
  /** JSON-serialisable header; must contain `tensors: EncodedTensor[]`. */
  readonly header: { readonly tensors: readonly EncodedTensor[] } & Record<string, unknown>;
  /** One float32 array per header tensor, in order. */
  readonly data: readonly Float32Array[];
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320). */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function encodePolicyFile(file: PolicyFile): Uint8Array {
  const headerBytes = new TextEncoder().encode(JSON.stringify(file.header));
  const values = file.data.reduce((n, d) => n + d.length, 0);
  const out = new Uint8Array(PREFIX_BYTES + headerBytes.length + values * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < POLICY_MAGIC.length; i++) out[i] = POLICY_MAGIC.charCodeAt(i);
  view.setUint32(8, POLICY_FORMAT_VERSION, true);
  view.setUint32(12, headerBytes.length, true);
  out.set(headerBytes, PREFIX_BYTES);
  let offset = PREFIX_BYTES + headerBytes.length;
  for (const d of file.data) {
    for (let i = 0; i < d.length; i++, offset += 4) view.setFloat32(offset, d[i]!, true);
  }
  view.setUint32(16, crc32(out.subarray(PREFIX_BYTES)), true);
  return out;
}

/**
 * Parses and checks the container (magic, version, checksum, lengths, JSON,
 * tensor sizes). Throws {@link RlError} naming what is wrong. The caller checks
 * the header's meaning.
 */
export function decodePolicyFile(bytes: Uint8Array): PolicyFile {
  // No instanceof: a Buffer or Uint8Array from another realm (e.g. read by fs inside a jest vm context) must pass.
  if (!ArrayBuffer.isView(bytes) || (bytes as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT !== 1) {
    throw new RlError(`policy bytes must be a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
  }
  if (bytes.length < PREFIX_BYTES) throw new RlError(`policy bytes are too short: need at least ${PREFIX_BYTES} bytes, got ${bytes.length}`);
  const magic = String.fromCharCode(...bytes.subarray(0, POLICY_MAGIC.length));
  if (magic !== POLICY_MAGIC) throw new RlError(`policy bytes do not start with the magic "${POLICY_MAGIC}", got ${JSON.stringify(magic)}: not a purify RL policy`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== POLICY_FORMAT_VERSION) throw new RlError(`policy format version ${version} is not supported; this build reads version ${POLICY_FORMAT_VERSION}`);
  const headerLength = view.getUint32(12, true);
  if (PREFIX_BYTES + headerLength > bytes.length) {
    throw new RlError(`policy header length ${headerLength} runs past the end of the ${bytes.length} bytes: the bytes are truncated or corrupt`);
  }
  const storedCrc = view.getUint32(16, true);
  const actualCrc = crc32(bytes.subarray(PREFIX_BYTES));
  if (storedCrc !== actualCrc) {
    throw new RlError(`policy checksum mismatch: stored CRC-32 ${storedCrc.toString(16).padStart(8, '0')}, computed ${actualCrc.toString(16).padStart(8, '0')}: the bytes are corrupt`);
  }
  let header: PolicyFile['header'];
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength))) as PolicyFile['header'];
  } catch (err) {
    throw new RlError(`policy header is not valid UTF-8 JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const tensors: unknown = typeof header === 'object' && header !== null ? header.tensors : undefined;
  if (!Array.isArray(tensors) || !tensors.every((t: EncodedTensor) => typeof t?.name === 'string' && Array.isArray(t.shape) && t.shape.every((d) => Number.isInteger(d) && d >= 0))) {
    throw new RlError('policy header.tensors must be a list of {name, shape} with integer dims');
  }
  const expectedValues = (tensors as EncodedTensor[]).reduce((n, t) => n + sizeOf(t.shape), 0);
  const dataBytes = bytes.length - PREFIX_BYTES - headerLength;
  if (dataBytes !== expectedValues * 4) {
    throw new RlError(`policy tensor data holds ${dataBytes} bytes, the header's tensors need ${expectedValues * 4} (${expectedValues} float32 values)`);
  }
  let offset = PREFIX_BYTES + headerLength;
  const data = (tensors as EncodedTensor[]).map((t) => {
    const d = new Float32Array(sizeOf(t.shape));
    for (let i = 0; i < d.length; i++, offset += 4) d[i] = view.getFloat32(offset, true);
    return d;
  });
  return { header, data };
}
