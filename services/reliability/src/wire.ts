/**
 * Raw voxels on the wire (common.proto): little-endian, C-ordered bytes sent
 * as byte-offset chunks. The small subset the reliability service needs.
 */
import { DType, type DataChunk } from '@purify/proto';
import { ErrorCode, PurifyError, validate } from '@purify/runtime';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Voxels of `dtype` from little-endian bytes, as float32 (a copy). */
export function float32FromBytes(bytes: Uint8Array, dtype: DType, field: string): Float32Array {
  const width = validate.DTYPE_BYTES[dtype];
  if (width === undefined || bytes.length % width !== 0) {
    throw validate.invalid(field, `must be whole ${DType[dtype] ?? dtype} values`, `${bytes.length} bytes`);
  }
  const n = bytes.length / width;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (dtype) {
    case DType.DTYPE_UINT8:
      out.set(bytes);
      break;
    case DType.DTYPE_INT16:
      for (let i = 0; i < n; i++) out[i] = view.getInt16(2 * i, true);
      break;
    case DType.DTYPE_UINT16:
      for (let i = 0; i < n; i++) out[i] = view.getUint16(2 * i, true);
      break;
    case DType.DTYPE_INT32:
      for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true);
      break;
    case DType.DTYPE_FLOAT32:
      if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
      else for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    default:
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
  }
  return out;
}

/** Little-endian bytes of a float32 array (a view on little-endian hosts). */
export function bytesOfFloat32(a: Float32Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN) return view;
  const out = new Uint8Array(view.length);
  const dv = new DataView(out.buffer);
  a.forEach((v, i) => dv.setFloat32(4 * i, v, true));
  return out;
}

/** Splits `bytes` into chunks of at most `chunkBytes`, with their offsets. */
export function* chunksOf(bytes: Uint8Array, chunkBytes: number): Generator<DataChunk> {
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
    yield { byteOffset: offset, data: Buffer.from(bytes.buffer, bytes.byteOffset + offset, Math.min(chunkBytes, bytes.length - offset)) };
  }
}

/** Collects streamed chunks into one buffer of exactly `total` bytes, checking offsets. */
export class ChunkCollector {
  private readonly buffer: Uint8Array;
  private received = 0;

  constructor(
    readonly total: number,
    private readonly field: string,
  ) {
    this.buffer = new Uint8Array(total);
  }

  add(chunk: DataChunk): void {
    const offset = Number(chunk.byteOffset);
    if (offset !== this.received) throw validate.invalid(`${this.field}.byte_offset`, `must continue at byte ${this.received} (chunks in order, none lost)`, offset);
    if (this.received + chunk.data.length > this.total) {
      throw validate.invalid(this.field, `must carry exactly ${this.total} bytes in all`, `${this.received + chunk.data.length} bytes or more`);
    }
    this.buffer.set(chunk.data, this.received);
    this.received += chunk.data.length;
  }

  get complete(): boolean {
    return this.received === this.total;
  }

  finish(): Uint8Array {
    if (this.received === 0) throw new PurifyError(ErrorCode.InvalidArgument, `\`${this.field}\` must carry the image's ${this.total} bytes of voxels, got none (an empty image)`);
    if (!this.complete) throw validate.invalid(this.field, `must carry exactly ${this.total} bytes in all`, `${this.received} bytes`);
    return this.buffer;
  }
}
