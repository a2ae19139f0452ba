/**
 * Client side of SegmenterService.Segment: streams a Volume in and the label
 * map (and optionally the probabilities) out. Used by the CLI and by other
 * services (reliability, trainer) through their generated client.
 */
import { DType, type Modality, type ModelInfo, type ModelRef, type SegmenterServiceClient, type SegmentRequest, type SegmentResponse, type SegmentResult } from '@purify/proto';
import { ErrorCode, PurifyError, unaryCall, withReplicaRetry, type CallContext } from '@purify/runtime';
import type { Volume } from '@purify/imaging';
import { arrayFromBytes, bytesOfArray, ChunkAssembler, chunksOf, volumeFromHeader, volumeHeaderOf } from './wire';

export interface RemoteSegmentOptions {
  /** Version 0 = whatever version of the model is serving. */
  readonly model: ModelRef;
  readonly overlap?: number;
  readonly flipTta?: boolean;
  /** One window per slice instead of overlapping tiles (proto `SegmentOptions.whole_slice`). */
  readonly wholeSlice?: boolean;
  readonly returnProbabilities?: boolean;
  /** Tiles per inference call; 0/undefined = the server's default. */
  readonly batchSize?: number;
  readonly modality?: Modality;
  readonly caseId?: string;
  /** Deadline of the whole call (default 10 minutes). */
  readonly timeoutMs?: number;
  /** Request chunk size in bytes (default 1 MiB). */
  readonly chunkBytes?: number;
  readonly signal?: AbortSignal;
  /** When called from inside a handler: propagate its deadline and cancellation. */
  readonly parent?: CallContext;
}

export interface RemoteSegmentResult {
  readonly result: SegmentResult;
  /** uint8 `[z, y, x]` on the input's grid. */
  readonly labels: Volume<Uint8Array>;
  /** float32 `[c, z, y, x]` when requested. */
  readonly probabilities: { readonly data: Float32Array; readonly shape: readonly [number, number, number, number] } | undefined;
}

export const DEFAULT_SEGMENT_TIMEOUT_MS = 600_000;
const DEFAULT_CHUNK_BYTES = 1 << 20;

function protocolError(message: string): PurifyError {
  return new PurifyError(ErrorCode.Internal, `segment failed: ${message}`);
}

/**
 * Segments `volume` through a segmenter: one setup message, the voxels in
 * chunks (with back-pressure), then reads the result header, the label chunks
 * and, when requested, the probability chunks, checking every offset and size.
 * Segment is idempotent: when the replica serving it goes away (UNAVAILABLE, or
 * its streams reset), the whole call is made again within the same deadline
 * (`withReplicaRetry`, attempts from the client's `maxAttempts`). Errors reject
 * as PurifyError with the server's status code (`segment failed: <server message>`).
 */
export function segmentRemote(client: SegmenterServiceClient, volume: Volume, options: RemoteSegmentOptions): Promise<RemoteSegmentResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SEGMENT_TIMEOUT_MS;
  const deadline = Math.min(Date.now() + timeoutMs, options.parent ? Date.now() + options.parent.remainingMs() : Infinity);
  return withReplicaRetry(client, 'Segment', { deadline, signal: options.signal, parent: options.parent }, () => segmentOnce(client, volume, options, deadline));
}

/** One Segment call (one attempt of {@link segmentRemote}). */
function segmentOnce(client: SegmenterServiceClient, volume: Volume, options: RemoteSegmentOptions, deadline: number): Promise<RemoteSegmentResult> {
  const callOptions = options.parent ? options.parent.downstream() : {};
  const call = client.segment({ ...callOptions, deadline });
  const [nz, ny, nx] = volume.shape;

  return new Promise<RemoteSegmentResult>((resolve, reject) => {
    let finished = false;
    let result: SegmentResult | undefined;
    let labels: ChunkAssembler | undefined;
    let probabilities: ChunkAssembler | undefined;
    const onAbort = (): void => fail(new PurifyError(ErrorCode.Cancelled, 'segment failed: cancelled by the caller'));
    const fail = (err: unknown): void => {
      if (finished) return;
      finished = true;
      options.signal?.removeEventListener('abort', onAbort);
      call.cancel();
      reject(err instanceof PurifyError ? err : PurifyError.wrap(err, 'segment failed'));
    };
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });

    call.on('data', (msg: SegmentResponse) => {
      if (finished) return;
      try {
        const p = msg.payload;
        if (p?.$case === 'result') {
          if (result) throw protocolError('the server sent a second result');
          result = p.result;
          const header = result.labels;
          if (!header || header.shapeZyx.join() !== [nz, ny, nx].join()) {
            throw protocolError(`the label map shape [${header?.shapeZyx.join(', ') ?? ''}] is not the input's [${nz}, ${ny}, ${nx}]`);
          }
          labels = new ChunkAssembler(nz * ny * nx, 'labels', 'the label map');
          if (options.returnProbabilities) {
            const shape = result.probabilitiesShape;
            if (shape.length !== 4 || shape.slice(1).join() !== [nz, ny, nx].join()) {
              throw protocolError(`probabilities_shape must be [c, ${nz}, ${ny}, ${nx}], got [${shape.join(', ')}]`);
            }
            probabilities = new ChunkAssembler(shape.reduce((a, b) => a * b, 1) * 4, 'probabilities', 'the probabilities');
          }
        } else if (p?.$case === 'labels') {
          if (!labels) throw protocolError('label chunk before the result');
          labels.add(p.labels);
        } else if (p?.$case === 'probabilities') {
          if (!probabilities || !labels?.complete) throw protocolError('probability chunk before the result and labels, or not requested');
          probabilities.add(p.probabilities);
        }
      } catch (err) {
        fail(err instanceof PurifyError ? err : protocolError((err as Error).message));
      }
    });
    call.on('error', (err: Error) => fail(PurifyError.wrap(err, 'segment failed')));
    call.on('end', () => {
      if (finished) return;
      try {
        if (!result || !labels) throw protocolError('the stream ended without a result');
        const labelVolume = volumeFromHeader(result.labels!, labels.finish(), 'label map', { view: true }) as Volume<Uint8Array>;
        let probs: RemoteSegmentResult['probabilities'];
        if (probabilities) {
          const data = arrayFromBytes(probabilities.finish(), DType.DTYPE_FLOAT32, 'probabilities', { view: true }) as Float32Array;
          probs = { data, shape: result.probabilitiesShape as unknown as readonly [number, number, number, number] };
        }
        finished = true;
        options.signal?.removeEventListener('abort', onAbort);
        resolve({ result, labels: labelVolume, probabilities: probs });
      } catch (err) {
        fail(err instanceof PurifyError ? err : protocolError((err as Error).message));
      }
    });

    const send = async (): Promise<void> => {
      const write = (msg: SegmentRequest): Promise<void> =>
        call.write(msg) ? Promise.resolve() : new Promise<void>((res) => call.once('drain', () => res()));
      await write({
        payload: {
          $case: 'setup',
          setup: {
            model: options.model,
            volume: volumeHeaderOf(volume, { ...(options.modality === undefined ? {} : { modality: options.modality }), ...(options.caseId === undefined ? {} : { caseId: options.caseId }) }),
            options: {
              overlap: options.overlap ?? 0.5,
              flipTta: options.flipTta ?? false,
              returnProbabilities: options.returnProbabilities ?? false,
              batchSize: options.batchSize ?? 0,
              wholeSlice: options.wholeSlice ?? false,
            },
          },
        },
      });
      for (const chunk of chunksOf(bytesOfArray(volume.data), options.chunkBytes ?? DEFAULT_CHUNK_BYTES)) {
        if (finished) return;
        await write({ payload: { $case: 'chunk', chunk } });
      }
      if (!finished) call.end();
    };
    send().catch(fail);
  });
}

/**
 * Makes sure `ref` can be segmented: when version 0 is asked and some version of
 * the model serves, or the asked version serves, nothing is done; otherwise
 * LoadModel (version 0 = the registry's latest). Returns the serving model.
 */
export async function ensureModelLoaded(client: SegmenterServiceClient, ref: ModelRef, settings: { timeoutMs?: number; parent?: CallContext } = {}): Promise<ModelInfo> {
  const listed = await unaryCall(client, 'listModels', { includeRegistry: false, name: ref.name }, settings);
  const serving = listed.models.find((m) => m.ref?.name === ref.name && m.loaded);
  if (serving && (ref.version === 0 || serving.ref?.version === ref.version)) return serving;
  return unaryCall(client, 'loadModel', { ref }, settings);
}
