/**
 * The adaptation loop's ports over gRPC: the teacher is exported to ONNX,
 * published to the shared model registry and loaded on the segmenter
 * (`LoadModel`), predicted with `Segment`; reliability comes from `Score`; the
 * agent from `Act` / `Feedback` / `Update`.
 *
 * Every call has a deadline. A call that fails with UNAVAILABLE (or runs out
 * of time) is retried with exponential backoff; when the attempts are used up
 * the error says which service at which address could not be reached, and the
 * job fails with a resumable reason.
 */
import { ActionSpace, BorderMode, DType, MapKind, type AgentServiceClient, type Modality, type ReliabilityConfig, type ReliabilityServiceClient, type ScoreRequest, type SegmentRequest, type SegmentResponse, type SegmenterServiceClient, type VolumeHeader } from '@purify/proto';
import { ErrorCode, PurifyError, unaryCall } from '@purify/runtime';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { DEFAULT_WEIGHT_LEVELS, FEATURE_SCHEMA, NUM_FEATURES, TEACHER_NORMALIZATION, type ActRequest, type ActResult, type AgentPort, type PolicyAddress, type PublishedTeacher, type ReliabilityPort, type RewardItem, type ScoredVolume, type TeacherPort } from '@purify/adaptation';
import { publishSegmentationModel, type SliceVolume } from '@purify/training';

/** Retry policy of calls to other services. */
export interface RetrySettings {
  /** Attempts per call, including the first. */
  readonly attempts: number;
  /** Backoff before the 2nd attempt; doubles each time. */
  readonly backoffMs: number;
  /** Deadline of each call. */
  readonly timeoutMs: number;
}

/** A dependency could not be reached: the job fails with this message and can be resumed later. */
export class ServiceUnreachableError extends Error {
  override readonly name = 'ServiceUnreachableError';
}

const RETRYABLE = new Set<string>([ErrorCode.Unavailable, ErrorCode.DeadlineExceeded, ErrorCode.ResourceExhausted]);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs `call` with retries on UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED; other errors pass through. */
export async function withRetry<T>(service: string, addresses: readonly string[], rpc: string, retry: RetrySettings, call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  let last: PurifyError | undefined;
  for (let attempt = 1; attempt <= retry.attempts; attempt++) {
    if (signal?.aborted) throw signal.reason as Error;
    try {
      return await call();
    } catch (err) {
      if (signal?.aborted) throw signal.reason as Error;
      const e = PurifyError.wrap(err);
      if (!RETRYABLE.has(e.code)) throw e;
      last = e;
      if (attempt < retry.attempts) await sleep(retry.backoffMs * 2 ** (attempt - 1), signal);
    }
  }
  throw new ServiceUnreachableError(`${service} at ${addresses.join(',')} unreachable: ${rpc} failed ${retry.attempts} times (last: ${last?.code ?? ''} ${last?.message ?? ''})`);
}

/**
 * Runs `fn` with a per-call signal that follows `signal`: the listener on the
 * job's long-lived signal is removed when the call ends (a call's own abort
 * listener would otherwise stay on the job signal for the whole job).
 */
export async function scoped<T>(signal: AbortSignal | undefined, fn: (settings: { signal?: AbortSignal }) => Promise<T>): Promise<T> {
  if (signal === undefined) return fn({});
  const child = new AbortController();
  const follow = (): void => child.abort(signal.reason);
  if (signal.aborted) follow();
  else signal.addEventListener('abort', follow, { once: true });
  try {
    return await fn({ signal: child.signal });
  } finally {
    signal.removeEventListener('abort', follow);
  }
}

/** Sends every request of a bidirectional stream, collects every response until the server ends it. */
function exchange<Req, Res>(open: (options: { deadline: number }) => ClientDuplexStream<Req, Res>, requests: readonly Req[], timeoutMs: number, signal?: AbortSignal): Promise<Res[]> {
  return new Promise((resolve, reject) => {
    const call = open({ deadline: Date.now() + timeoutMs });
    const out: Res[] = [];
    const onAbort = (): void => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    call.on('data', (m: Res) => out.push(m));
    call.on('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(PurifyError.wrap(err));
    });
    call.on('end', () => {
      signal?.removeEventListener('abort', onAbort);
      resolve(out);
    });
    for (const r of requests) call.write(r);
    call.end();
  });
}

const CHUNK_BYTES = 1 << 20;

function float32Chunks(data: Float32Array): { byteOffset: number; data: Buffer }[] {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out: { byteOffset: number; data: Buffer }[] = [];
  for (let o = 0; o < bytes.length; o += CHUNK_BYTES) out.push({ byteOffset: o, data: Buffer.from(bytes.subarray(o, Math.min(bytes.length, o + CHUNK_BYTES))) });
  return out;
}

function concatFloat32(parts: readonly Uint8Array[], what: string, expected: number): Float32Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  if (total !== expected * 4) throw new PurifyError(ErrorCode.Internal, `${what}: expected ${expected} float32 values (${expected * 4} bytes), got ${total} bytes`);
  const buf = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  return new Float32Array(buf.buffer, 0, expected);
}

/** The header of a working-grid volume of normalised float32 intensities. */
export function headerOf(v: SliceVolume, modality: Modality): VolumeHeader {
  const g = v.workingGrid;
  return {
    shapeZyx: [...v.shape],
    spacingXyzMm: [...g.spacingXyzMm],
    originLpsMm: [...g.originLpsMm],
    directionLps: [...g.directionLps],
    dtype: DType.DTYPE_FLOAT32,
    modality,
    caseId: v.id,
  };
}

export interface TeacherSettings {
  readonly artifactsDir: string;
  /** Registry name the round teachers are published under. */
  readonly name: string;
  readonly classes: readonly { index: number; name: string }[];
  readonly tileYx: readonly [number, number];
  readonly spacingXyMm: readonly [number, number];
  readonly modality: Modality;
  readonly provenance: Readonly<Record<string, string>>;
}

/** Export → registry → `LoadModel`; prediction through `Segment`. */
export class RemoteTeacherPort implements TeacherPort {
  constructor(
    private readonly segmenter: SegmenterServiceClient,
    private readonly addresses: readonly string[],
    private readonly retry: RetrySettings,
    private readonly settings: TeacherSettings,
  ) {}

  async publish(model: Parameters<TeacherPort['publish']>[0], round: number, signal?: AbortSignal): Promise<PublishedTeacher> {
    const s = this.settings;
    const version = publishSegmentationModel({
      artifactsDir: s.artifactsDir,
      name: s.name,
      model,
      classes: s.classes,
      inputSizeYx: s.tileYx,
      spacingXyMm: s.spacingXyMm,
      normalization: TEACHER_NORMALIZATION,
      provenance: { ...s.provenance, role: 'round-teacher', round: String(round + 1) },
      metrics: [],
    });
    const ref = { name: s.name, version: version.meta.version };
    await withRetry('segmenter', this.addresses, 'LoadModel', this.retry, () => scoped(signal, (c) => unaryCall(this.segmenter, 'loadModel', { ref }, { timeoutMs: this.retry.timeoutMs, ...c })), signal);
    return ref;
  }

  async predict(teacher: PublishedTeacher, volume: SliceVolume, signal?: AbortSignal): Promise<Float32Array> {
    const requests: SegmentRequest[] = [
      { payload: { $case: 'setup', setup: { model: teacher, volume: headerOf(volume, this.settings.modality), options: { overlap: 0, flipTta: false, returnProbabilities: true, batchSize: 0, wholeSlice: true } } } },
      ...float32Chunks(volume.image).map((chunk): SegmentRequest => ({ payload: { $case: 'chunk', chunk } })),
    ];
    const responses = await withRetry('segmenter', this.addresses, 'Segment', this.retry, () => exchange((o) => this.segmenter.segment(o), requests, this.retry.timeoutMs, signal), signal);
    const result = responses.find((r) => r.payload?.$case === 'result');
    if (result?.payload?.$case !== 'result') throw new PurifyError(ErrorCode.Internal, 'segmenter Segment answered no result');
    const k = result.payload.result.classes.length || this.settings.classes.length;
    const parts = responses.flatMap((r: SegmentResponse) => (r.payload?.$case === 'probabilities' ? [r.payload.probabilities.data] : []));
    return concatFloat32(parts, `segmenter Segment probabilities of ${volume.id}`, k * volume.image.length);
  }
}

/** Reliability settings from the job spec's `reliability` map (strings). */
export function reliabilityConfig(map: Readonly<Record<string, string>>, tileYx: readonly [number, number], sizeMultiple: number, seed: number): ReliabilityConfig {
  const side = Math.min(tileYx[0], tileYx[1]);
  const patchDefault = Math.max(sizeMultiple, Math.floor(side / 2 / sizeMultiple) * sizeMultiple);
  const int = (k: string, d: number): number => (map[k] === undefined ? d : Number(map[k]));
  const bool = (k: string, d: boolean): boolean => (map[k] === undefined ? d : map[k] === 'true');
  const patchSize = int('patch_size', patchDefault);
  return {
    patchSize,
    stride: int('stride', Math.max(1, Math.floor(patchSize / 2))),
    borderMode: map['border_mode'] === 'pad' ? BorderMode.BORDER_MODE_PAD : BorderMode.BORDER_MODE_SHIFT,
    splitByClass: bool('split_by_class', false),
    flipView: bool('flip_view', false),
    appearanceView: bool('appearance_view', false),
    seed: int('seed', seed),
    patchBatchSize: int('patch_batch_size', 0),
  };
}

/** `Score` with the pseudo-label and region-index maps. */
export class RemoteReliabilityPort implements ReliabilityPort {
  constructor(
    private readonly reliability: ReliabilityServiceClient,
    private readonly addresses: readonly string[],
    private readonly retry: RetrySettings,
    private readonly config: ReliabilityConfig,
    private readonly modality: Modality,
  ) {}

  async score(teacher: PublishedTeacher, volume: SliceVolume, round: number, signal?: AbortSignal): Promise<ScoredVolume> {
    const maps = [MapKind.MAP_KIND_PSEUDO_LABEL, MapKind.MAP_KIND_REGION_INDEX, MapKind.MAP_KIND_MAX_PROBABILITY];
    const requests: ScoreRequest[] = [
      { payload: { $case: 'setup', setup: { model: teacher, image: headerOf(volume, this.modality), config: this.config, maps, round } } },
      ...float32Chunks(volume.image).map((chunk): ScoreRequest => ({ payload: { $case: 'chunk', chunk } })),
    ];
    const responses = await withRetry('reliability', this.addresses, 'Score', this.retry, () => exchange((o) => this.reliability.score(o), requests, this.retry.timeoutMs, signal), signal);
    const first = responses[0];
    if (first?.payload?.$case !== 'result') throw new PurifyError(ErrorCode.Internal, 'reliability Score answered no result first');
    const result = first.payload.result;
    const features = result.features;
    if (features === undefined || features.schemaVersion !== FEATURE_SCHEMA.version || features.numFeatures !== NUM_FEATURES) {
      throw new PurifyError(ErrorCode.FailedPrecondition, `reliability Score answered feature schema ${features?.schemaVersion ?? '(none)'} with ${features?.numFeatures ?? 0} columns; this trainer reads ${FEATURE_SCHEMA.version} with ${NUM_FEATURES}`);
    }
    const byKind = new Map<MapKind, Uint8Array[]>();
    for (const r of responses.slice(1)) {
      if (r.payload?.$case !== 'map') continue;
      const list = byKind.get(r.payload.map.kind) ?? [];
      list.push(r.payload.map.chunk?.data ?? new Uint8Array());
      byKind.set(r.payload.map.kind, list);
    }
    const n = volume.image.length;
    const pseudo = concatFloat32(byKind.get(MapKind.MAP_KIND_PSEUDO_LABEL) ?? [], `reliability pseudo-label map of ${volume.id}`, n);
    const region = concatFloat32(byKind.get(MapKind.MAP_KIND_REGION_INDEX) ?? [], `reliability region-index map of ${volume.id}`, n);
    const maxProbability = concatFloat32(byKind.get(MapKind.MAP_KIND_MAX_PROBABILITY) ?? [], `reliability max-probability map of ${volume.id}`, n);
    return {
      numRegions: features.numRows,
      numFeatures: features.numFeatures,
      features: Float32Array.from(features.values),
      scores: Float32Array.from(result.scores),
      pseudoLabel: Uint8Array.from(pseudo),
      regionIndex: Int32Array.from(region),
      maxProbability,
    };
  }
}

/**
 * The policy a job uses when its spec names neither a policy nor an experiment:
 * one per feature schema (`purify-weights-v2`), since a policy reads exactly
 * one schema — a store that holds the default of an older schema keeps it, and
 * jobs under the new schema get a fresh default instead of INVALID_ARGUMENT.
 */
export const DEFAULT_POLICY = `purify-weights-${FEATURE_SCHEMA.version}`;

/** `Act` / `Feedback` / `Update`; registers {@link DEFAULT_POLICY} on first use when it does not exist. */
export class RemoteAgentPort implements AgentPort {
  private ensured = false;

  constructor(
    private readonly agent: AgentServiceClient,
    private readonly addresses: readonly string[],
    private readonly retry: RetrySettings,
    private readonly target: { policy: PolicyAddress } | { experiment: string } | undefined,
    private readonly seed: number,
    /** The job's context (job id, method, data sets, seed), stored with every version its updates make. */
    private readonly provenance: Readonly<Record<string, string>> = {},
  ) {}

  private call<T>(rpc: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry('agent', this.addresses, rpc, this.retry, fn, signal);
  }

  private async ensureDefault(signal?: AbortSignal): Promise<void> {
    if (this.ensured || this.target !== undefined) return;
    const list = await this.call('ListPolicies', () => scoped(signal, (s) => unaryCall(this.agent, 'listPolicies', { name: DEFAULT_POLICY, includeArchived: false }, { timeoutMs: this.retry.timeoutMs, ...s })), signal);
    if (list.policies.length === 0) {
      await this.call(
        'RegisterPolicy',
        () =>
          scoped(signal, (s) => unaryCall(
            this.agent,
            'registerPolicy',
            {
              name: DEFAULT_POLICY,
              spec: { actionSpace: ActionSpace.ACTION_SPACE_DISCRETE, weightLevels: [...DEFAULT_WEIGHT_LEVELS], hiddenUnits: [64, 64], featureSchemaVersion: FEATURE_SCHEMA.version, numFeatures: NUM_FEATURES, seed: this.seed },
              provenance: { registeredBy: 'trainer', reason: 'default policy of adaptation jobs' },
              weights: Buffer.alloc(0),
            },
            { timeoutMs: this.retry.timeoutMs, ...s },
          )),
        signal,
      );
    }
    this.ensured = true;
  }

  async act(request: ActRequest, policy: PolicyAddress | undefined, signal?: AbortSignal): Promise<ActResult> {
    await this.ensureDefault(signal);
    const chosen = policy ?? (this.target === undefined ? { name: DEFAULT_POLICY, version: 0 } : 'policy' in this.target ? this.target.policy : undefined);
    const target = chosen !== undefined ? { $case: 'policy' as const, policy: chosen } : { $case: 'experiment' as const, experiment: (this.target as { experiment: string }).experiment };
    const res = await this.call(
      'Act',
      () =>
        scoped(signal, (s) => unaryCall(
          this.agent,
          'act',
          {
            target,
            routingKey: request.routingKey,
            observations: { schemaVersion: FEATURE_SCHEMA.version, numRows: request.numRows, numFeatures: request.numFeatures, values: Array.from(request.observations) },
            deterministic: request.deterministic,
            context: { ...request.context },
          },
          { timeoutMs: this.retry.timeoutMs, ...s },
        )),
      signal,
    );
    if (res.policy === undefined) throw new PurifyError(ErrorCode.Internal, 'agent Act answered no policy');
    return { policy: { name: res.policy.name, version: res.policy.version }, decisionIds: res.decisions.map((d) => d.decisionId), weights: Float32Array.from(res.decisions, (d) => d.weight) };
  }

  async feedback(rewards: readonly RewardItem[], signal?: AbortSignal): Promise<void> {
    // Feedback is not idempotent (each decision is rewarded once): no retry on UNAVAILABLE after the request may have arrived.
    for (let i = 0; i < rewards.length; i += 5000) {
      const part = rewards.slice(i, i + 5000);
      await scoped(signal, (s) => unaryCall(this.agent, 'feedback', { rewards: part.map((r) => ({ decisionId: r.decisionId, reward: r.reward, done: r.done })) }, { timeoutMs: this.retry.timeoutMs, ...s })).catch((err: unknown) => {
        const e = PurifyError.wrap(err);
        if (RETRYABLE.has(e.code)) throw new ServiceUnreachableError(`agent at ${this.addresses.join(',')} unreachable: Feedback failed (${e.code} ${e.message})`);
        throw e;
      });
    }
  }

  async update(policy: PolicyAddress, provenance: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<PolicyAddress | undefined> {
    try {
      const request = { policy, minTransitions: 1, promote: false, provenance: { ...this.provenance, ...provenance } };
      const res = await scoped(signal, (s) => unaryCall(this.agent, 'update', request, { timeoutMs: this.retry.timeoutMs, ...s }));
      const ref = res.policy?.ref;
      return ref === undefined ? undefined : { name: ref.name, version: ref.version };
    } catch (err) {
      const e = PurifyError.wrap(err);
      if (e.code === ErrorCode.FailedPrecondition) return undefined;
      if (RETRYABLE.has(e.code)) throw new ServiceUnreachableError(`agent at ${this.addresses.join(',')} unreachable: Update failed (${e.code} ${e.message})`);
      throw e;
    }
  }

  /** Promotes `policy` (idempotent: promoting the promoted version changes nothing), retried while the agent is unreachable. */
  async promote(policy: PolicyAddress, signal?: AbortSignal): Promise<void> {
    await this.call('PromotePolicy', () => scoped(signal, (s) => unaryCall(this.agent, 'promotePolicy', { ref: policy }, { timeoutMs: this.retry.timeoutMs, ...s })), signal);
  }
}
