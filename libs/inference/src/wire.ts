/**
 * Volumes and tensors on the wire (proto/purify/v1/common.proto): raw
 * little-endian C-ordered bytes with a header, streamed as byte-offset chunks.
 */
import { DType, Modality, type DataChunk, type VolumeHeader } from '@purify/proto';
import { makeVolume, type Grid, type Vec3, type Volume, type VoxelArray } from '@purify/imaging';
import { InferenceError } from './errors';

type ArrayCtor = new (buffer: ArrayBuffer, byteOffset?: number, length?: number) => VoxelArray;

const ARRAYS: Readonly<Partial<Record<DType, ArrayCtor>>> = {
  [DType.DTYPE_UINT8]: Uint8Array,
  [DType.DTYPE_INT16]: Int16Array,
  [DType.DTYPE_UINT16]: Uint16Array,
  [DType.DTYPE_INT32]: Int32Array,
  [DType.DTYPE_FLOAT32]: Float32Array,
  [DType.DTYPE_FLOAT64]: Float64Array,
};

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The wire dtype of a typed array. */
export function dtypeOfArray(a: VoxelArray): DType {
  if (a instanceof Uint8Array) return DType.DTYPE_UINT8;
  if (a instanceof Int16Array) return DType.DTYPE_INT16;
  if (a instanceof Uint16Array) return DType.DTYPE_UINT16;
  if (a instanceof Int32Array) return DType.DTYPE_INT32;
  if (a instanceof Float32Array) return DType.DTYPE_FLOAT32;
  return DType.DTYPE_FLOAT64;
}

function swapped(bytes: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += width) for (let b = 0; b < width; b++) out[i + b] = bytes[i + width - 1 - b] as number;
  return out;
}

/** Little-endian bytes of a typed array (a view on little-endian hosts, a copy otherwise). */
export function bytesOfArray(a: VoxelArray): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return HOST_LITTLE_ENDIAN || a.BYTES_PER_ELEMENT === 1 ? view : swapped(view, a.BYTES_PER_ELEMENT);
}

/**
 * A typed array of `dtype` from little-endian bytes: a copy, or with
 * `view: true` a view on the same memory when the host is little-endian and the
 * bytes are aligned (the caller then hands over `bytes`).
 */
export function arrayFromBytes(bytes: Uint8Array, dtype: DType, what: string, options: { view?: boolean } = {}): VoxelArray {
  const Ctor = ARRAYS[dtype];
  if (Ctor === undefined) throw InferenceError.invalidArgument(`${what}: unsupported dtype ${DType[dtype] ?? dtype}`);
  const width = (Ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
  if (bytes.length % width !== 0) throw InferenceError.invalidArgument(`${what}: ${bytes.length} bytes is not a whole number of ${DType[dtype]} values`);
  if (options.view && (HOST_LITTLE_ENDIAN || width === 1) && bytes.byteOffset % width === 0) {
    return new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length / width);
  }
  const copy = HOST_LITTLE_ENDIAN || width === 1 ? bytes.slice() : swapped(bytes, width);
  return new Ctor(copy.buffer as ArrayBuffer, copy.byteOffset, copy.length / width);
}

/** The wire header of a volume. */
export function volumeHeaderOf(volume: Volume, extra: { modality?: Modality; caseId?: string } = {}): VolumeHeader {
  return {
    shapeZyx: [...volume.shape],
    spacingXyzMm: [...volume.spacingXyzMm],
    originLpsMm: [...volume.originLpsMm],
    directionLps: [...volume.directionLps],
    dtype: dtypeOfArray(volume.data),
    modality: extra.modality ?? Modality.MODALITY_UNSPECIFIED,
    caseId: extra.caseId ?? '',
  };
}

/** The grid a (validated) header describes — before any voxel arrives. */
export function gridOfHeader(header: VolumeHeader): Grid {
  return {
    shape: header.shapeZyx as unknown as Vec3,
    spacingXyzMm: header.spacingXyzMm as unknown as Vec3,
    originLpsMm: header.originLpsMm as unknown as Vec3,
    directionLps: header.directionLps,
  };
}

/** A volume from a (validated) header and its voxel bytes (copied unless `view`, see {@link arrayFromBytes}). */
export function volumeFromHeader(header: VolumeHeader, bytes: Uint8Array, what = 'volume', options: { view?: boolean } = {}): Volume {
  const data = arrayFromBytes(bytes, header.dtype, what, options);
  const { shape, ...geometry } = gridOfHeader(header);
  return makeVolume(data, shape, geometry, what);
}

/** Splits `bytes` into chunks of at most `chunkBytes` with their byte offsets (views, no copy). */
export function* chunksOf(bytes: Uint8Array, chunkBytes: number): Generator<DataChunk> {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
    const view = bytes.subarray(offset, Math.min(offset + chunkBytes, bytes.length));
    yield { byteOffset: offset, data: Buffer.from(view.buffer, view.byteOffset, view.byteLength) };
  }
}

/**
 * Reassembles a streamed buffer of a known size, checking every chunk's offset.
 * `field` names the stream in messages (e.g. `chunk` for a request stream).
 */
export class ChunkAssembler {
  readonly bytes: Uint8Array;
  private received = 0;

  constructor(
    readonly totalBytes: number,
    private readonly field: string,
    private readonly what: string,
  ) {
    this.bytes = new Uint8Array(totalBytes);
  }

  get receivedBytes(): number {
    return this.received;
  }

  get complete(): boolean {
    return this.received === this.totalBytes;
  }

  add(chunk: DataChunk): void {
    const offset = Number(chunk.byteOffset);
    if (offset !== this.received) {
      throw InferenceError.invalidArgument(`\`${this.field}.byte_offset\` must be ${this.received} (the bytes received so far), got ${offset}`);
    }
    const n = chunk.data.length;
    if (n === 0) throw InferenceError.invalidArgument(`\`${this.field}.data\` must not be empty, got 0 bytes at offset ${offset}`);
    if (offset + n > this.totalBytes) {
      throw InferenceError.invalidArgument(`\`${this.field}\` runs past the ${this.totalBytes} bytes of ${this.what}, got ${n} bytes at offset ${offset}`);
    }
    this.bytes.set(chunk.data, offset);
    this.received += n;
  }

  /** The assembled bytes; throws when some are missing. */
  finish(): Uint8Array {
    if (!this.complete) {
      throw InferenceError.invalidArgument(`\`${this.field}\` stream ended after ${this.received} of the ${this.totalBytes} bytes of ${this.what}`);
    }
    return this.bytes;
  }
}
