import { DType, SegmenterServiceService, type SegmenterServiceServer, type VolumeHeader } from '@purify/proto';
import { ErrorCode, MemoryBudget, PurifyError, SpanAttr, addSpanAttributes, bidiStream, opt, readSetup, runService, serverSchema, serviceMetrics, unary, validate, type CallContext, type DomainHandlers, type ServiceDefinitionSpec } from '@purify/runtime';
import { ModelRegistry } from '@purify/artifacts';
import {
  ChunkAssembler,
  arrayFromBytes,
  GraphOptimization,
  InferenceError,
  ModelPool,
  ProviderPreference,
  bytesOfArray,
  chunksOf,
  fromRegistryError,
  gridOfHeader,
  predictPatches,
  providerAvailability,
  segmentMemoryBytes,
  segmentVolume,
  volumeFromHeader,
  volumeHeaderOf,
  type ModelLease,
  type SessionConfig,
} from '@purify/inference';
import { modelInfoOf } from './model-info';

const schema = {
  ...serverSchema('segmenter'),
  artifactsDir: opt.directory('Artifact store root; models live in <dir>/models/<name>/<version>', 'artifacts', 'write'),
  maxVolumeBytes: opt.int('Largest volume a Segment call accepts, bytes', 512 * 1024 * 1024, { min: 1, max: 2 ** 32 }),
  maxProbabilitiesBytes: opt.int('Largest probability map [c, z, y, x] float32 a Segment call may ask for, bytes', 1024 * 1024 * 1024, { min: 1, max: 2 ** 32 }),
  chunkBytes: opt.int('Bytes of voxels per streamed Segment response chunk (below --max-send-message-bytes)', 1024 * 1024, { min: 1024, max: 2 ** 31 - 1 }),
  batchSize: opt.int('Tiles per inference call when a request leaves batch_size at 0', 8, { min: 1, max: 4096 }),
  maxBatchSize: opt.int('Largest batch_size a Segment request may ask for', 64, { min: 1, max: 4096 }),
  memoryBudgetBytes: opt.int('Working memory all running Segment calls may reserve together, bytes (beyond it: RESOURCE_EXHAUSTED)', 4 * 1024 * 1024 * 1024, { min: 1024 * 1024, max: 2 ** 50 }),
  maxConcurrentSegments: opt.int('Segment calls running at once; more wait (see --segment-wait-ms)', 8, { min: 1, max: 4096 }),
  segmentWaitMs: opt.int('How long a Segment call may wait for room in the budget before RESOURCE_EXHAUSTED, ms (0 = refuse at once)', 30_000, { min: 0, max: 3_600_000 }),
  maxWaitingSegments: opt.int('Segment calls that may wait for room at once; one more gets RESOURCE_EXHAUSTED', 256, { min: 0, max: 65_536 }),
  intraOpThreads: opt.int('onnxruntime threads inside one operator; 0 = onnxruntime default (one per physical core)', 0, { min: 0, max: 1024 }),
  interOpThreads: opt.int('onnxruntime threads across operators; 0 = onnxruntime default', 0, { min: 0, max: 1024 }),
  graphOptimization: opt.oneOf('onnxruntime graph optimisation level', Object.values(GraphOptimization), GraphOptimization.All),
  executionProvider: opt.oneOf('auto = CUDA when onnxruntime-node can use it, else CPU', Object.values(ProviderPreference), ProviderPreference.Auto),
};

/** Inference and registry errors → the one error type of the runtime. */
function toPurify(err: unknown): unknown {
  const e = fromRegistryError(err);
  if (!(e instanceof InferenceError)) return e;
  const code = e.kind === 'not-found' ? ErrorCode.NotFound : e.kind === 'invalid-argument' ? ErrorCode.InvalidArgument : ErrorCode.FailedPrecondition;
  return new PurifyError(code, e.message, { cause: e });
}

async function mapped<T>(work: () => Promise<T> | T): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw toPurify(err);
  }
}

const FLOAT_DTYPES = new Set([DType.DTYPE_FLOAT32, DType.DTYPE_FLOAT64]);

function describeVolume(h: VolumeHeader): string {
  return `setup.volume (shape [${h.shapeZyx.join(', ')}], ${DType[h.dtype]})`;
}

export const segmenterService: ServiceDefinitionSpec<typeof schema> = {
  kind: 'segmenter',
  schema,
  build: async (config, logger) => {
    if (config.chunkBytes > config.maxSendMessageBytes - 1024) {
      throw new Error(`--chunk-bytes must be at most --max-send-message-bytes − 1024 (${config.maxSendMessageBytes - 1024}), got ${config.chunkBytes}`);
    }
    if (config.batchSize > config.maxBatchSize) throw new Error(`--batch-size (${config.batchSize}) must not exceed --max-batch-size (${config.maxBatchSize})`);
    const availability = providerAvailability();
    if (config.executionProvider === ProviderPreference.Cuda && availability.cudaUnavailableReason !== undefined) {
      throw new Error(`--execution-provider cuda: ${availability.cudaUnavailableReason}`);
    }
    const sessionConfig: SessionConfig = {
      intraOpThreads: config.intraOpThreads,
      interOpThreads: config.interOpThreads,
      graphOptimization: config.graphOptimization,
      executionProvider: config.executionProvider,
    };
    const registry = new ModelRegistry(config.artifactsDir);
    // Every Segment call reserves its working memory before it accepts the voxels (#25 item 8).
    const budget = new MemoryBudget({
      limitBytes: config.memoryBudgetBytes,
      maxConcurrent: config.maxConcurrentSegments,
      waitMs: config.segmentWaitMs,
      maxWaiting: config.maxWaitingSegments,
      limitSetting: '--memory-budget-bytes',
      concurrentSetting: '--max-concurrent-segments',
    });
    const pool = new ModelPool(registry, sessionConfig, (err, key) => logger.warn('releasing a session failed', { model: `${key.name}:${key.version}`, error: err }));
    const defaultProvider = config.executionProvider === ProviderPreference.Cpu ? 'cpu' : (availability.available[0] ?? 'cpu');
    logger.info('onnxruntime', { version: availability.onnxruntimeVersion, provider: defaultProvider, cuda: availability.cudaUnavailableReason ?? 'available' });

    /**
     * A lease on `name`:`version`. A version (≠ 0) that is registered but does not
     * serve here is loaded first: with several replicas a LoadModel reaches only
     * one of them, and the others load from the shared registry at their first call.
     */
    const acquire = async (name: string, version: number, ctx: CallContext): Promise<ModelLease> => {
      try {
        const { lease, loaded } = await pool.acquireLoading(name, version);
        if (loaded) {
          serviceMetrics.loadedVersion('model', loaded.info.key.name, loaded.info.key.version);
          ctx.logger.info('model loaded on demand', {
            model: `${name}:${version}`,
            replaced: loaded.replaced ? `${loaded.replaced.name}:${loaded.replaced.version}` : undefined,
            provider: loaded.info.executionProvider,
            loadMs: Math.round(loaded.info.loadMs),
          });
        }
        return lease;
      } catch (err) {
        throw toPurify(err);
      }
    };

    return {
      definition: SegmenterServiceService,
      capabilities: () => {
        const loaded = pool.loaded();
        return {
          'onnx.provider': loaded[0]?.executionProvider ?? defaultProvider,
          'onnx.providers_available': availability.available.join(','),
          'onnx.cuda': availability.cudaUnavailableReason ?? 'available',
          'onnxruntime.version': availability.onnxruntimeVersion,
          'onnx.intra_op_threads': config.intraOpThreads === 0 ? 'default' : String(config.intraOpThreads),
          'onnx.inter_op_threads': config.interOpThreads === 0 ? 'default' : String(config.interOpThreads),
          'onnx.graph_optimization': config.graphOptimization,
          'segment.batch_size': String(config.batchSize),
          'segment.chunk_bytes': String(config.chunkBytes),
          'segment.max_volume_bytes': String(config.maxVolumeBytes),
          'models.loaded': loaded.map((m) => `${m.key.name}:${m.key.version}@${m.executionProvider}`).join(','),
        };
      },
      onShutdown: () => pool.close(),
      implementation: (env): DomainHandlers<SegmenterServiceServer> => ({
        loadModel: unary(env, 'LoadModel', async (req, ctx) => {
          const ref = validate.modelRef(req.ref, 'ref');
          const outcome = await mapped(() => pool.load(ref.name, ref.version));
          const { info } = outcome;
          // Recorded on every successful LoadModel (also when nothing changed): the gauge is what serves now.
          serviceMetrics.loadedVersion('model', info.key.name, info.key.version);
          addSpanAttributes({ [SpanAttr.ModelName]: info.key.name, [SpanAttr.ModelVersion]: info.key.version }, ctx);
          if (outcome.changed) {
            env.logger.info('model loaded', {
              model: `${info.key.name}:${info.key.version}`,
              replaced: outcome.replaced ? `${outcome.replaced.name}:${outcome.replaced.version}` : undefined,
              provider: info.executionProvider,
              providerNote: info.providerNote,
              loadMs: Math.round(info.loadMs),
            });
          }
          return modelInfoOf(info.meta, info);
        }),

        unloadModel: unary(env, 'UnloadModel', async (req) => {
          const ref = validate.modelRef(req.ref, 'ref');
          const wasLoaded = await pool.unload(ref.name, ref.version);
          if (wasLoaded) {
            // 0 = no version of this name serves here any more.
            serviceMetrics.loadedVersion('model', ref.name, 0);
            env.logger.info('model unloaded', { model: `${ref.name}:${ref.version}` });
          }
          return { wasLoaded };
        }),

        listModels: unary(env, 'ListModels', (req) => {
          if (req.name !== '') validate.identifier(req.name, 'name');
          const wanted = (name: string): boolean => req.name === '' || req.name === name;
          const models = pool.loaded().filter((m) => wanted(m.key.name)).map((m) => modelInfoOf(m.meta, m));
          if (req.includeRegistry) {
            for (const name of registry.names().filter(wanted)) {
              for (const version of registry.versions(name)) {
                if (pool.servingVersion(name) === version) continue;
                try {
                  models.push(modelInfoOf(registry.get(name, version).meta));
                } catch (err) {
                  env.logger.warn('skipping an unreadable registry version', { model: `${name}:${version}`, error: (err as Error).message });
                }
              }
            }
          }
          models.sort((a, b) => (a.ref?.name ?? '').localeCompare(b.ref?.name ?? '') || (a.ref?.version ?? 0) - (b.ref?.version ?? 0));
          return { models };
        }),

        segment: bidiStream(env, 'Segment', async (requests, send, ctx) => {
          const setup = await readSetup(requests, ctx);
          const ref = validate.modelRef(setup.model, 'setup.model');
          const totalBytes = validate.volumeHeader(setup.volume, 'setup.volume', config.maxVolumeBytes);
          const header = setup.volume as VolumeHeader;
          const o = setup.options;
          const overlap = o?.overlap ?? 0;
          if (!(Number.isFinite(overlap) && overlap >= 0 && overlap < 1)) throw validate.invalid('setup.options.overlap', 'must be a number in [0, 1)', overlap);
          const requestedBatch = o?.batchSize ?? 0;
          if (requestedBatch > config.maxBatchSize) {
            throw validate.invalid('setup.options.batch_size', `must be at most ${config.maxBatchSize} (the configured limit; 0 = server default)`, requestedBatch);
          }
          const batchSize = requestedBatch === 0 ? config.batchSize : requestedBatch;
          const returnProbabilities = o?.returnProbabilities ?? false;

          // The request holds the session it started with, whatever LoadModel does meanwhile.
          const lease = await acquire(ref.name, ref.version, ctx);
          let release: (() => void) | undefined;
          try {
            const model = lease.model;
            const voxels = totalBytes / (validate.DTYPE_BYTES[header.dtype] as number);
            if (returnProbabilities && voxels * model.numClasses * 4 > config.maxProbabilitiesBytes) {
              throw validate.invalid(
                'setup.options.return_probabilities',
                `would stream ${voxels * model.numClasses * 4} bytes (${model.numClasses} classes × ${voxels} voxels × 4), over the configured limit of ${config.maxProbabilitiesBytes}`,
                true,
              );
            }
            const wholeSlice = o?.wholeSlice ?? false;
            release = await budget.acquire(segmentMemoryBytes(gridOfHeader(header), totalBytes, model, { returnProbabilities, batchSize, wholeSlice }), `Segment of ${describeVolume(header)}`, ctx.signal);
            const assembler = new ChunkAssembler(totalBytes, 'chunk', describeVolume(header));
            while (!assembler.complete) {
              const msg = await requests.next(ctx.signal);
              if (msg === undefined) break;
              if (msg.payload?.$case !== 'chunk') throw validate.invalid('payload', 'must be `chunk` after the `setup` message', msg.payload?.$case);
              const chunk = msg.payload.chunk;
              await mapped(() => assembler.add(chunk));
            }
            const bytes = await mapped(() => assembler.finish());
            const volume = volumeFromHeader(header, bytes, 'setup.volume', { view: true });
            if (FLOAT_DTYPES.has(header.dtype)) {
              const bad = volume.data.findIndex((v) => !Number.isFinite(v));
              if (bad >= 0) throw validate.invalid('chunk.data', `must hold finite voxels (no NaN or ±Inf) in ${describeVolume(header)}`, `${volume.data[bad]} at voxel ${bad}`);
            }
            const res = await mapped(() => segmentVolume(model, volume, { overlap, flipTta: o?.flipTta ?? false, batchSize, returnProbabilities, wholeSlice, signal: ctx.signal }));
            // Voxels of the volume as sent ([z, y, x]), over the whole pass (resampling, tiles, TTA, stitching).
            serviceMetrics.inference(volume.data.length, res.timings.totalMs / 1000, { name: res.model.name, version: res.model.version });
            addSpanAttributes({ [SpanAttr.ModelName]: res.model.name, [SpanAttr.ModelVersion]: res.model.version, [SpanAttr.VoxelCount]: volume.data.length, [SpanAttr.BatchSize]: batchSize }, ctx);
            // Not the caller's case_id: whatever a caller puts there (a file name, a DICOM UID) stays out of the logs; the line's traceId links it to the caller.
            ctx.logger.info('segmented', { model: `${res.model.name}:${res.model.version}`, shapeZyx: header.shapeZyx, ...res.timings });
            await send({
              payload: {
                $case: 'result',
                result: {
                  model: { name: res.model.name, version: res.model.version },
                  labels: volumeHeaderOf(res.labels, { modality: header.modality, caseId: header.caseId }),
                  probabilitiesShape: res.probabilities ? [res.numClasses, ...header.shapeZyx] : [],
                  classes: model.meta.classes.map((c) => ({ index: c.index, name: c.name })),
                  inferenceMs: res.timings.totalMs,
                },
              },
            });
            for (const chunk of chunksOf(res.labels.data, config.chunkBytes)) await send({ payload: { $case: 'labels', labels: chunk } });
            if (res.probabilities) {
              for (const chunk of chunksOf(bytesOfArray(res.probabilities), config.chunkBytes)) await send({ payload: { $case: 'probabilities', probabilities: chunk } });
            }
          } finally {
            release?.();
            lease.release();
          }
        }),

        predictPatches: unary(env, 'PredictPatches', async (req, ctx) => {
          const ref = validate.modelRef(req.model, 'model');
          const patches = validate.required(req.patches, 'patches');
          if (patches.shape.length !== 4 || patches.shape.some((d) => d <= 0)) {
            throw validate.invalid('patches.shape', 'must be [n, c, y, x] with positive dims', patches.shape);
          }
          if (patches.dtype !== DType.DTYPE_FLOAT32) throw validate.invalid('patches.dtype', 'must be DTYPE_FLOAT32', DType[patches.dtype] ?? patches.dtype);
          const [n, c, h, w] = patches.shape as [number, number, number, number];
          const expectedBytes = n * c * h * w * 4;
          if (patches.data.length !== expectedBytes) {
            throw validate.invalid('patches.data', `must hold ${expectedBytes} bytes (float32 [${patches.shape.join(', ')}])`, `${patches.data.length} bytes`);
          }
          const lease = await acquire(ref.name, ref.version, ctx);
          try {
            const model = lease.model;
            await mapped(() => model.checkBatch(patches.shape, '`patches.shape`'));
            const outBytes = n * model.numClasses * h * w * 4;
            if (outBytes > config.maxSendMessageBytes - 1024) {
              throw validate.invalid('patches', `would give ${outBytes} bytes of probabilities, over the send limit of ${config.maxSendMessageBytes} bytes; send fewer patches per call`, `shape [${patches.shape.join(', ')}]`);
            }
            const data = arrayFromBytes(patches.data, DType.DTYPE_FLOAT32, 'patches.data') as Float32Array;
            const res = await mapped(() => predictPatches(model, { data, shape: [n, c, h, w] }, { batchSize: config.batchSize, signal: ctx.signal }));
            // n patches of h × w pixels each (channels are inputs of one pixel, not more voxels).
            serviceMetrics.inference(n * h * w, res.inferenceMs / 1000, { name: model.key.name, version: model.key.version });
            addSpanAttributes({ [SpanAttr.ModelName]: model.key.name, [SpanAttr.ModelVersion]: model.key.version, [SpanAttr.PatchCount]: n, [SpanAttr.BatchSize]: config.batchSize }, ctx);
            const p = res.probabilities;
            return {
              model: { name: model.key.name, version: model.key.version },
              probabilities: { shape: [...p.shape], dtype: DType.DTYPE_FLOAT32, data: toBuffer(bytesOfArray(p.data)) },
              inferenceMs: res.inferenceMs,
            };
          } finally {
            lease.release();
          }
        }),
      }),
    };
  },
};

/** A Buffer view of bytes (no copy). */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function main(argv: readonly string[]): void {
  runService(segmenterService, argv);
}
