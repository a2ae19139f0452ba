/**
 * An in-process FAKE segmenter implementing purify.v1.SegmenterService with a
 * tiny deterministic pure-JS "network" — for protocol, validation and deadline
 * tests that must not depend on ONNX models. The real-segmenter end-to-end test
 * is `real-segmenter.spec.ts`.
 *
 * Network: normalise with the CT window [0, 100] → v; s = 3×3 box mean of v
 * (zero padding outside the input, so predictions depend on context near the
 * input's edges, like a real CNN); logits (0, 6s − 2, 12s − 7) → softmax over 3
 * classes. Inputs must be multiples of 4 in y and x (like a depth-3 U-Net).
 */
import { DType, Normalization_Kind, SegmenterServiceService, type ModelInfo, type SegmentRequest, type SegmentResponse, type SegmenterServiceServer } from '@purify/proto';
import { bidiStream, ErrorCode, PurifyError, readSetup, serverSchema, startInProcess, unary, validate, type DomainHandlers, type RunningServer, type ServiceDefinitionSpec } from '@purify/runtime';

export const TOY_CLASSES = 3;
const WINDOW = { low: 0, high: 100 };

/** Toy network on float32 `[n, 1, h, w]` normalised images → `[n, 3, h, w]`. */
export function toyNetwork(x: Float32Array, n: number, h: number, w: number): Float32Array {
  const out = new Float32Array(n * TOY_CLASSES * h * w);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        let s = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy;
            const xs = xx + dx;
            if (yy >= 0 && yy < h && xs >= 0 && xs < w) s += x[b * h * w + yy * w + xs] as number;
          }
        }
        s /= 9;
        const logits = [0, 6 * s - 2, 12 * s - 7];
        const m = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - m));
        const sum = e.reduce((a, c) => a + c, 0);
        for (let c = 0; c < TOY_CLASSES; c++) out[((b * TOY_CLASSES + c) * h + y) * w + xx] = (e[c] as number) / sum;
      }
    }
  }
  return out;
}

export function toyNormalize(raw: Float32Array): Float32Array {
  return raw.map((v) => (Math.min(Math.max(v, WINDOW.low), WINDOW.high) - WINDOW.low) / (WINDOW.high - WINDOW.low));
}

function info(name: string, version: number): ModelInfo {
  return {
    ref: { name, version },
    classes: [0, 1, 2].map((index) => ({ index, name: `c${index}` })),
    inputChannels: name === 'two-channel' ? 2 : 1,
    inputSizeYx: [32, 32],
    spacingXyMm: name === 'coarse' ? [2, 2] : [],
    normalization: { kind: Normalization_Kind.KIND_CT_WINDOW, windowLow: WINDOW.low, windowHigh: WINDOW.high, percentileLow: 0, percentileHigh: 0 },
    provenance: {},
    metrics: [],
    createdAt: undefined,
    loaded: true,
    executionProvider: 'fake',
    onnxSha256: '',
  };
}

/** What the fake saw: method and the deadline grpc-js reports for the call (ms since epoch; Infinity = none). */
export interface SeenCall {
  readonly method: string;
  readonly deadlineMs: number;
}

export interface FakeSegmenter {
  readonly server: RunningServer;
  readonly calls: SeenCall[];
}

const MODELS = ['toy', 'two-channel', 'coarse'];

export async function startFakeSegmenter(): Promise<FakeSegmenter> {
  const calls: SeenCall[] = [];
  const seen = (method: string, ctx: { deadline: Date | undefined }): void => {
    calls.push({ method, deadlineMs: ctx.deadline?.getTime() ?? Infinity });
  };
  const lookup = (name: string, version: number): ModelInfo => {
    if (!MODELS.includes(name)) throw PurifyError.notFound(`model "${name}" is not in the registry at /fake`);
    return info(name, version === 0 ? 3 : version);
  };
  const spec: ServiceDefinitionSpec<ReturnType<typeof serverSchema>> = {
    kind: 'segmenter',
    schema: serverSchema('segmenter'),
    build: async () => ({
      definition: SegmenterServiceService,
      implementation: (env): DomainHandlers<SegmenterServiceServer> => ({
        loadModel: unary(env, 'LoadModel', (req, ctx) => {
          seen('LoadModel', ctx);
          const ref = validate.modelRef(req.ref, 'ref');
          return lookup(ref.name, ref.version);
        }),
        unloadModel: unary(env, 'UnloadModel', () => ({ wasLoaded: false })),
        listModels: unary(env, 'ListModels', () => ({ models: MODELS.map((m) => info(m, 3)) })),
        predictPatches: unary(env, 'PredictPatches', (req, ctx) => {
          seen('PredictPatches', ctx);
          const ref = validate.modelRef(req.model, 'model');
          lookup(ref.name, ref.version);
          const t = validate.required(req.patches, 'patches');
          const [n, c, h, w] = t.shape as [number, number, number, number];
          if (h % 4 !== 0 || w % 4 !== 0) throw validate.invalid('patches.shape', 'must have y and x multiples of 4 (the model size multiple)', t.shape);
          const x = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
          const probs = toyNetwork(x, n * c, h, w);
          return { model: ref, probabilities: { shape: [n, TOY_CLASSES, h, w], dtype: DType.DTYPE_FLOAT32, data: Buffer.from(probs.buffer) }, inferenceMs: 0 };
        }),
        segment: bidiStream<SegmentRequest, SegmentResponse>(env, 'Segment', async (requests, send, ctx) => {
          seen('Segment', ctx);
          const setup = await readSetup(requests, ctx);
          const ref = validate.modelRef(setup.model, 'setup.model');
          lookup(ref.name, ref.version);
          const header = setup.volume!;
          if (header.dtype !== DType.DTYPE_FLOAT32) throw new PurifyError(ErrorCode.InvalidArgument, 'the fake takes float32 only');
          const [z, h, w] = header.shapeZyx as [number, number, number];
          const parts: Buffer[] = [];
          for (let m = await requests.next(ctx.signal); m; m = await requests.next(ctx.signal)) if (m.payload?.$case === 'chunk') parts.push(m.payload.chunk.data);
          const buf = Buffer.concat(parts);
          const raw = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
          const p = toyNetwork(toyNormalize(raw), z, h, w); // [z, K, h, w]
          const probs = new Float32Array(TOY_CLASSES * z * h * w); // → [K, z, h, w]
          for (let s = 0; s < z; s++) for (let c = 0; c < TOY_CLASSES; c++) probs.set(p.subarray((s * TOY_CLASSES + c) * h * w, (s * TOY_CLASSES + c + 1) * h * w), (c * z + s) * h * w);
          await send({ payload: { $case: 'result', result: { model: ref, labels: header, probabilitiesShape: [TOY_CLASSES, z, h, w], classes: [], inferenceMs: 0 } } });
          await send({ payload: { $case: 'labels', labels: { byteOffset: 0, data: Buffer.alloc(z * h * w) } } });
          await send({ payload: { $case: 'probabilities', probabilities: { byteOffset: 0, data: Buffer.from(probs.buffer) } } });
        }),
      }),
    }),
  };
  const server = await startInProcess(spec, ['--port', '0']);
  return { server, calls };
}
