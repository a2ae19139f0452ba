/**
 * The Score RPC: validate → receive the image → LoadModel → normalise →
 * (Segment whole / flip / appearance views ∥ batched PredictPatches) →
 * features and scores → result, then the requested maps.
 */
import { resampledGrid } from '@purify/imaging';
import { type ModelRef, type ScoreRequest, type ScoreResponse, type SegmenterServiceClient } from '@purify/proto';
import { ErrorCode, PurifyError, SpanAttr, addSpanAttributes, readSetup, validate, type CallContext, type MessageReader } from '@purify/runtime';
import {
  appearancePerturbation,
  buildGrid,
  computeFeatures,
  decomposeAndCompose,
  FEATURE_SCHEMA,
  flipX,
  normalizeIntensities,
  NUM_FEATURES,
  perturbAppearance,
  ReliabilityError,
  resolveOptions,
  type Composition,
} from '@purify/reliability';
import { featureSchemaToProto, gridToProto, mapOf, mapsFromProto, normalizationFromProto, optionsFromProto } from './convert';
import { loadModel, predictPatchesRemote, segmentProbabilities } from './segmenter-client';
import { bytesOfFloat32, chunksOf, ChunkCollector, float32FromBytes } from './wire';

export interface ScoreSettings {
  readonly segmenter: SegmenterServiceClient;
  readonly maxVolumeBytes: number;
  /** Upper bound of every segmenter call; the caller's deadline wins when sooner. */
  readonly segmenterTimeoutMs: number;
  /** Patches per PredictPatches call when the request says 0. */
  readonly patchBatchSize: number;
  /** PredictPatches calls in flight at once. */
  readonly patchConcurrency: number;
  readonly mapChunkBytes: number;
}

export { featureSchemaToProto };

/** ReliabilityError (library validation) → INVALID_ARGUMENT under the client's field name. */
function asRequestError(err: unknown, prefix: string): unknown {
  if (!(err instanceof ReliabilityError)) return err;
  return new PurifyError(ErrorCode.InvalidArgument, err.message.replace(`\`${err.field}\``, `\`${prefix}${err.field}\``));
}

/** Segmenter errors keep their code; the message names the parameter that led to them. */
function fromSegmenter(err: unknown, field: string): PurifyError {
  const e = PurifyError.wrap(err);
  return new PurifyError(e.code, `\`${field}\`: ${e.message}`, { cause: e });
}

export async function runScore(requests: MessageReader<ScoreRequest>, send: (msg: ScoreResponse) => Promise<void>, ctx: CallContext, settings: ScoreSettings): Promise<void> {
  const setup = await readSetup(requests, ctx);
  const requested = validate.modelRef(setup.model, 'setup.model');
  const bytes = validate.volumeHeader(setup.image, 'setup.image', settings.maxVolumeBytes);
  const header = setup.image!;
  const shape = [...header.shapeZyx] as [number, number, number];
  const cfg = validate.required(setup.config, 'setup.config');
  let options;
  try {
    options = resolveOptions(optionsFromProto(cfg, { patchBatchSize: settings.patchBatchSize, concurrency: settings.patchConcurrency }), shape);
  } catch (err) {
    throw asRequestError(err, 'setup.');
  }
  const maps = mapsFromProto(setup.maps);

  // The voxels.
  const collector = new ChunkCollector(bytes, 'chunk');
  for (;;) {
    const msg = await requests.next(ctx.signal);
    if (msg === undefined) break;
    if (msg.payload?.$case !== 'chunk') throw validate.invalid('payload', 'must be `chunk` after the setup', msg.payload?.$case);
    collector.add(msg.payload.chunk);
  }
  const raw = float32FromBytes(collector.finish(), header.dtype, 'chunk');
  for (let i = 0; i < raw.length; i++) {
    if (!Number.isFinite(raw[i])) throw validate.invalid('chunk', `voxels must be finite; voxel ${i} of [${shape.join(', ')}]`, raw[i]);
  }

  // The model: resolve the version once, so every call below uses the same one.
  const timeoutMs = settings.segmenterTimeoutMs;
  let info;
  try {
    info = await loadModel(settings.segmenter, requested, ctx, timeoutMs);
  } catch (err) {
    throw fromSegmenter(err, 'setup.model');
  }
  const model: ModelRef = info.ref ?? requested;
  const refText = `${model.name}:${model.version}`;
  if (info.inputChannels !== 1) {
    throw validate.invalid('setup.model', `(${refText}) takes ${info.inputChannels} input channels, but \`setup.image\` is a one-channel [z, y, x] volume; model input channels`, info.inputChannels);
  }
  if (info.spacingXyMm.length === 2) {
    const g = resampledGrid(
      { shape, spacingXyzMm: header.spacingXyzMm as unknown as [number, number, number], originLpsMm: header.originLpsMm as unknown as [number, number, number], directionLps: header.directionLps },
      { spacingXyzMm: [info.spacingXyMm[0], info.spacingXyMm[1], undefined] },
    );
    if (g.shape[1] !== shape[1] || g.shape[2] !== shape[2]) {
      throw validate.invalid(
        'setup.image.spacing_xyz_mm',
        `must match the in-plane spacing model ${refText} was trained at (${info.spacingXyMm.join(', ')} mm, x, y): the segmenter would resample, the anchor patches would not; resample the image first`,
        header.spacingXyzMm,
      );
    }
  }
  const numClasses = info.classes.length;
  const image = normalizeIntensities(raw, normalizationFromProto(info.normalization, `model ${refText}`));

  // grpc-js adds one 'cancelled' listener on this call per downstream call made with `parent` and never
  // removes it; this handler makes (patch batches + 4) of them by design, so raise the warning limit to that.
  const grid = buildGrid(shape, options);
  const downstreamCalls = Math.ceil((shape[0] * grid.anchorY.length * grid.anchorX.length) / options.batchSize) + 4;
  const parentCall = ctx.downstream().parent as unknown as { getMaxListeners?(): number; setMaxListeners?(n: number): void } | undefined;
  if (parentCall?.setMaxListeners && parentCall.getMaxListeners) parentCall.setMaxListeners(parentCall.getMaxListeners() + downstreamCalls);

  // Whole-image views through Segment and anchor patches through PredictPatches, all in flight together.
  const abort = new AbortController();
  const onAbort = (): void => abort.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const started = performance.now();
  let segmentMs = 0;
  let patchesMs = 0;
  const nx = shape[2];
  const segment = (voxels: Float32Array, what: string) =>
    segmentProbabilities(settings.segmenter, model, header, voxels, ctx, timeoutMs, abort.signal).then(
      (r) => {
        if (numClasses > 0 && r.numClasses !== numClasses) {
          throw new PurifyError(ErrorCode.Internal, `segmenter Segment (${what}) answered ${r.numClasses} classes, model ${refText} has ${numClasses}`);
        }
        return r.probabilities;
      },
      (err: unknown) => {
        throw fromSegmenter(err, 'setup.model');
      },
    );
  const views = Promise.all([
    segment(raw, 'whole image'),
    cfg.flipView ? segment(flipX(raw, nx), 'flip view').then((p) => flipX(p, nx)) : undefined,
    cfg.appearanceView ? segment(perturbAppearance(raw, appearancePerturbation(cfg.seed)), 'appearance view') : undefined,
  ]).then((r) => {
    segmentMs = performance.now() - started;
    return r;
  });
  const patches = decomposeAndCompose(
    image,
    1,
    grid,
    (batch, batchShape) =>
      predictPatchesRemote(settings.segmenter, model, batch, batchShape, ctx, timeoutMs).catch((err: unknown) => {
        const e = PurifyError.wrap(err);
        // A patch size the network cannot take (e.g. not a multiple of its size multiple) comes back as INVALID_ARGUMENT.
        throw e.code === ErrorCode.InvalidArgument ? fromSegmenter(e, 'setup.config.patch_size') : fromSegmenter(e, 'setup.model');
      }),
    options,
    { signal: abort.signal, ...(numClasses > 0 ? { numClasses } : {}) },
  ).then((c: Composition) => {
    patchesMs = performance.now() - started;
    return c;
  });
  let whole: Float32Array;
  let flip: Float32Array | undefined;
  let appearance: Float32Array | undefined;
  let composition: Composition;
  try {
    [[whole, flip, appearance], composition] = await Promise.all([views, patches]);
  } catch (err) {
    abort.abort(err);
    // Let the other branch settle before answering, so nothing runs on after the call ends.
    await Promise.allSettled([views, patches]);
    throw err;
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
  if (whole.length !== composition.numClasses * raw.length) {
    throw new PurifyError(ErrorCode.Internal, `segmenter answered ${whole.length / raw.length} classes for Segment and ${composition.numClasses} for PredictPatches (model ${refText})`);
  }

  const t = performance.now();
  ctx.throwIfAborted();
  const result = computeFeatures({ grid, whole, composition, flip, appearance, round: setup.round, splitByClass: options.splitByClass });
  const featuresMs = performance.now() - t;
  addSpanAttributes({ [SpanAttr.ModelName]: model.name, [SpanAttr.ModelVersion]: model.version, [SpanAttr.Round]: setup.round, [SpanAttr.VoxelCount]: raw.length, [SpanAttr.RegionCount]: result.regions.length }, ctx);
  ctx.logger.debug('scored', { model: refText, shape, regions: result.regions.length, segmentMs, patchesMs, featuresMs, patchCalls: composition.calls });

  await send({
    payload: {
      $case: 'result',
      result: {
        model,
        grid: gridToProto(grid, result.regions),
        features: { schemaVersion: FEATURE_SCHEMA.version, numRows: result.regions.length, numFeatures: NUM_FEATURES, values: Array.from(result.features) },
        scores: Array.from(result.scores),
        sliceScores: Array.from(result.sliceScores),
        maps,
        segmentMs,
        patchesMs,
        featuresMs,
      },
    },
  });
  for (const kind of maps) {
    for (const chunk of chunksOf(bytesOfFloat32(mapOf(result.maps, kind)), settings.mapChunkBytes)) {
      await send({ payload: { $case: 'map', map: { kind, chunk } } });
    }
  }
}

