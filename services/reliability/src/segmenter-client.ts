/**
 * The reliability service's calls to the segmenter. Every call forwards the
 * handler's deadline and cancellation (`parent`). Written here rather than
 * taken from `@purify/inference` (which has a Segment client too) so the
 * reliability process does not load onnxruntime-node.
 */
import { DType, type ModelInfo, type ModelRef, type SegmenterServiceClient, type SegmentRequest, type SegmentResponse, type SegmentResult, type VolumeHeader } from '@purify/proto';
import { ErrorCode, PurifyError, unaryCall, withReplicaRetry, type CallContext } from '@purify/runtime';
import { bytesOfFloat32, chunksOf, ChunkCollector, float32FromBytes } from './wire';

const CHUNK_BYTES = 1 << 20;

function protocolError(message: string): PurifyError {
  return new PurifyError(ErrorCode.Internal, `segmenter Segment: ${message}`);
}

export interface SegmentProbabilities {
  readonly result: SegmentResult;
  /** float32 `[K, z, y, x]` on the image's grid. */
  readonly probabilities: Float32Array;
  readonly numClasses: number;
}

/**
 * Segment with probabilities: streams `voxels` (float32 `[z, y, x]`, raw
 * intensities — the segmenter normalises) under `header`, returns the class
 * probabilities. When the segmenter replica goes away mid-call (UNAVAILABLE, or
 * its streams reset) the call is made again, on another replica, within the
 * same deadline (`withReplicaRetry`). Errors keep the segmenter's status code.
 */
export function segmentProbabilities(
  client: SegmenterServiceClient,
  model: ModelRef,
  header: VolumeHeader,
  voxels: Float32Array,
  ctx: CallContext,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<SegmentProbabilities> {
  const deadline = Math.min(Date.now() + timeoutMs, Date.now() + ctx.remainingMs());
  return withReplicaRetry(client, 'Segment', { deadline, signal, parent: ctx }, () => segmentOnce(client, model, header, voxels, ctx, deadline, signal));
}

/** One Segment call (one attempt of {@link segmentProbabilities}). */
function segmentOnce(
  client: SegmenterServiceClient,
  model: ModelRef,
  header: VolumeHeader,
  voxels: Float32Array,
  ctx: CallContext,
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<SegmentProbabilities> {
  const call = client.segment({ ...ctx.downstream(), deadline });
  const [nz, ny, nx] = header.shapeZyx as [number, number, number];
  return new Promise<SegmentProbabilities>((resolve, reject) => {
    let finished = false;
    let result: SegmentResult | undefined;
    let labels: ChunkCollector | undefined;
    let probabilities: ChunkCollector | undefined;
    const onAbort = (): void => fail(signal?.reason);
    const fail = (err: unknown): void => {
      if (finished) return;
      finished = true;
      signal?.removeEventListener('abort', onAbort);
      call.cancel();
      reject(PurifyError.wrap(err, 'segmenter Segment'));
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    call.on('data', (msg: SegmentResponse) => {
      if (finished) return;
      try {
        const p = msg.payload;
        if (p?.$case === 'result') {
          if (result) throw protocolError('a second result');
          result = p.result;
          const shape = result.probabilitiesShape;
          if (shape.length !== 4 || shape.slice(1).join() !== [nz, ny, nx].join() || !((shape[0] as number) > 0)) {
            throw protocolError(`probabilities_shape must be [K, ${nz}, ${ny}, ${nx}], got [${shape.join(', ')}]`);
          }
          labels = new ChunkCollector(nz * ny * nx, 'labels');
          probabilities = new ChunkCollector(shape.reduce((a, b) => a * b, 1) * 4, 'probabilities');
        } else if (p?.$case === 'labels') {
          if (!labels) throw protocolError('label chunk before the result');
          labels.add(p.labels);
        } else if (p?.$case === 'probabilities') {
          if (!probabilities) throw protocolError('probability chunk before the result');
          probabilities.add(p.probabilities);
        }
      } catch (err) {
        fail(err instanceof PurifyError && err.code === ErrorCode.Internal ? err : protocolError((err as Error).message));
      }
    });
    call.on('error', (err: Error) => fail(err));
    call.on('end', () => {
      if (finished) return;
      try {
        if (!result || !probabilities?.complete) throw protocolError('the stream ended before the result and all probabilities arrived');
        const data = float32FromBytes(probabilities.finish(), DType.DTYPE_FLOAT32, 'probabilities');
        finished = true;
        signal?.removeEventListener('abort', onAbort);
        resolve({ result, probabilities: data, numClasses: result.probabilitiesShape[0] as number });
      } catch (err) {
        fail(err instanceof PurifyError ? err : protocolError((err as Error).message));
      }
    });
    const write = (msg: SegmentRequest): Promise<void> => (call.write(msg) ? Promise.resolve() : new Promise<void>((res) => call.once('drain', () => res())));
    const send = async (): Promise<void> => {
      await write({
        payload: {
          $case: 'setup',
          setup: { model, volume: { ...header, dtype: DType.DTYPE_FLOAT32 }, options: { overlap: 0, flipTta: false, returnProbabilities: true, batchSize: 0, wholeSlice: true } },
        },
      });
      for (const chunk of chunksOf(bytesOfFloat32(voxels), CHUNK_BYTES)) {
        if (finished) return;
        await write({ payload: { $case: 'chunk', chunk } });
      }
      if (!finished) call.end();
    };
    send().catch(fail);
  });
}

/**
 * PredictPatches: float32 `[n, c, P, P]` normalised crops → softmax
 * `[n, K, P, P]`, checking the answer's shape.
 */
export async function predictPatchesRemote(
  client: SegmenterServiceClient,
  model: ModelRef,
  patches: Float32Array,
  shape: readonly [number, number, number, number],
  ctx: CallContext,
  timeoutMs: number,
): Promise<Float32Array> {
  const bytes = bytesOfFloat32(patches);
  const res = await unaryCall(
    client,
    'predictPatches',
    { model, patches: { shape: [...shape], dtype: DType.DTYPE_FLOAT32, data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) } },
    { parent: ctx, timeoutMs },
  );
  const t = res.probabilities;
  const [n, , p, q] = shape;
  if (!t || t.dtype !== DType.DTYPE_FLOAT32 || t.shape.length !== 4 || t.shape[0] !== n || t.shape[2] !== p || t.shape[3] !== q) {
    throw new PurifyError(ErrorCode.Internal, `segmenter PredictPatches: probabilities must be float32 [${n}, K, ${p}, ${q}], got ${t ? `${DType[t.dtype]} [${t.shape.join(', ')}]` : 'nothing'}`);
  }
  const expected = t.shape.reduce((a, b) => a * b, 1) * 4;
  if (t.data.length !== expected) throw new PurifyError(ErrorCode.Internal, `segmenter PredictPatches: ${t.data.length} bytes of probabilities for shape [${t.shape.join(', ')}] (${expected} expected)`);
  return float32FromBytes(t.data, DType.DTYPE_FLOAT32, 'probabilities');
}

/** LoadModel (idempotent): resolves version 0 to the latest and returns what the model expects. */
export function loadModel(client: SegmenterServiceClient, ref: ModelRef, ctx: CallContext, timeoutMs: number): Promise<ModelInfo> {
  return unaryCall(client, 'loadModel', { ref }, { parent: ctx, timeoutMs });
}
