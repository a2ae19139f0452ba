/**
 * The `weights.bin` of a published model: a self-describing file so that a later
 * process (the trainer service, adaptation) can rebuild the tfjs model.
 *
 * Layout (little-endian): bytes 0–7 the ASCII magic `PURIFYW1`, bytes 8–11 the
 * uint32 length L of a UTF-8 JSON header, then the header
 * `{format, version, unet, tensors: [{name, shape, trainable}]}`, zero padding to
 * a multiple of 4 bytes, then every tensor's float32 values in header order
 * (tfjs layouts: conv kernels `[kh, kw, in, out]`).
 */
import { buildUNet, resolveUNetConfig, type SegModel, type UNetConfig, type WeightSnapshot } from '@purify/models';
import { TrainingDataError } from './errors';

const MAGIC = 'PURIFYW1';
export const WEIGHTS_FORMAT = 'purify-unet-weights';
export const WEIGHTS_VERSION = 1;

interface WeightsHeader {
  readonly format: typeof WEIGHTS_FORMAT;
  readonly version: typeof WEIGHTS_VERSION;
  readonly unet: UNetConfig;
  readonly tensors: readonly { readonly name: string; readonly shape: readonly number[]; readonly trainable: boolean }[];
}

/** Serialises a model's configuration and all weights (BatchNorm statistics included). */
export function encodeWeights(model: SegModel): Uint8Array {
  return encodeWeightSnapshot(model.config, model.getWeights());
}

/** Serialises a configuration and a weight snapshot. */
export function encodeWeightSnapshot(unet: UNetConfig, weights: readonly WeightSnapshot[]): Uint8Array {
  const header: WeightsHeader = { format: WEIGHTS_FORMAT, version: WEIGHTS_VERSION, unet, tensors: weights.map((w) => ({ name: w.name, shape: [...w.shape], trainable: w.trainable })) };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const start = Math.ceil((12 + json.length) / 4) * 4;
  const total = weights.reduce((n, w) => n + w.values.length, 0);
  const out = new Uint8Array(start + total * 4);
  const view = new DataView(out.buffer);
  out.set(Buffer.from(MAGIC, 'ascii'), 0);
  view.setUint32(8, json.length, true);
  out.set(json, 12);
  let o = start;
  for (const w of weights) for (let i = 0; i < w.values.length; i++, o += 4) view.setFloat32(o, w.values[i] as number, true);
  return out;
}

/** Parses a weights file; `what` names it in errors. */
export function decodeWeights(bytes: Uint8Array, what = 'weights.bin'): { unet: UNetConfig; weights: WeightSnapshot[] } {
  if (bytes.length < 12 || Buffer.from(bytes.subarray(0, 8)).toString('ascii') !== MAGIC) throw new TrainingDataError(`${what}: not a purify weights file (expected the magic ${MAGIC})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = view.getUint32(8, true);
  if (12 + len > bytes.length) throw new TrainingDataError(`${what}: header of ${len} bytes runs past the end of the file (${bytes.length} bytes)`);
  let header: WeightsHeader;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(12, 12 + len)).toString('utf8')) as WeightsHeader;
  } catch (err) {
    throw new TrainingDataError(`${what}: header is not valid JSON (${(err as Error).message})`);
  }
  if (header.format !== WEIGHTS_FORMAT || header.version !== WEIGHTS_VERSION) {
    throw new TrainingDataError(`${what}: expected format ${WEIGHTS_FORMAT} version ${WEIGHTS_VERSION}, got ${String(header.format)} version ${String(header.version)}`);
  }
  const start = Math.ceil((12 + len) / 4) * 4;
  const sizes = header.tensors.map((t) => t.shape.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (bytes.length !== start + total * 4) throw new TrainingDataError(`${what}: expected ${start + total * 4} bytes for the listed tensors, got ${bytes.length}`);
  let o = start;
  const weights = header.tensors.map((t, i) => {
    const values = new Float32Array(sizes[i] as number);
    for (let j = 0; j < values.length; j++, o += 4) values[j] = view.getFloat32(o, true);
    return { name: t.name, shape: [...t.shape], trainable: t.trainable, values };
  });
  return { unet: resolveUNetConfig(header.unet), weights };
}

/** Rebuilds a model from a weights file (the caller disposes it). */
export function modelFromWeights(bytes: Uint8Array, options: { namePrefix?: string; what?: string } = {}): SegModel {
  const { unet, weights } = decodeWeights(bytes, options.what);
  const model = buildUNet(unet, options.namePrefix === undefined ? {} : { namePrefix: options.namePrefix });
  try {
    model.setWeights(weights);
  } catch (err) {
    model.dispose();
    throw new TrainingDataError(`${options.what ?? 'weights.bin'}: ${(err as Error).message}`);
  }
  return model;
}
