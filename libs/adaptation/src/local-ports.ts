/**
 * In-process implementations of the ports: the teacher predicts with
 * TensorFlow.js, reliability runs `@purify/reliability` on the teacher's own
 * patch predictions, and a fixed rule stands in for the agent. For tests and
 * single-node runs (the trainer's `--inference local`); the trainer service
 * uses the gRPC implementations by default.
 */
import * as tf from '@tensorflow/tfjs';
import type { SegModel } from '@purify/models';
import { FEATURE_INDEX, scoreReliability, type ReliabilityOptions } from '@purify/reliability';
import { predictSlices, type SliceVolume } from '@purify/training';
import { AdaptationConfigError } from './errors';
import type { ActRequest, ActResult, AgentPort, PolicyAddress, PublishedTeacher, ReliabilityPort, RewardItem, ScoredVolume, TeacherPort } from './ports';

/** `[z, h, w, K]` → `[K, z, h, w]`. */
export function channelsFirst(probs: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) out[c * n + i] = probs[i * k + c] as number;
  return out;
}

/** Teacher "publishing" keeps the live model; prediction runs it with TensorFlow.js. */
export class LocalTeacherPort implements TeacherPort {
  private readonly models = new Map<number, SegModel>();
  private version = 0;
  readonly published: PublishedTeacher[] = [];

  constructor(private readonly name = 'local-teacher') {}

  publish(model: SegModel): Promise<PublishedTeacher> {
    const t = { name: this.name, version: ++this.version };
    // Only the latest teacher is servable; older versions are forgotten (their model may be disposed).
    this.models.clear();
    this.models.set(t.version, model);
    this.published.push(t);
    return Promise.resolve(t);
  }

  modelOf(teacher: PublishedTeacher): SegModel {
    const m = this.models.get(teacher.version);
    if (m === undefined) throw new AdaptationConfigError('teacher', `teacher ${teacher.name}:${teacher.version} is not the latest published teacher`);
    return m;
  }

  predict(teacher: PublishedTeacher, volume: SliceVolume): Promise<Float32Array> {
    const model = this.modelOf(teacher);
    const [z, h, w] = volume.shape;
    return Promise.resolve(channelsFirst(predictSlices(model, volume.image, volume.shape), z * h * w, model.config.numClasses));
  }
}

/** Reliability scoring in process: whole image and anchor patches through the local teacher. */
export class LocalReliabilityPort implements ReliabilityPort {
  constructor(
    private readonly teacher: LocalTeacherPort,
    private readonly options: ReliabilityOptions,
  ) {}

  async score(teacher: PublishedTeacher, volume: SliceVolume, round: number, signal?: AbortSignal): Promise<ScoredVolume> {
    const model = this.teacher.modelOf(teacher);
    const whole = await this.teacher.predict(teacher, volume);
    const result = await scoreReliability({
      image: volume.image,
      shapeZyx: volume.shape,
      whole,
      round,
      options: this.options,
      ...(signal ? { signal } : {}),
      predict: (patches, [n, , p, q]) => {
        const k = model.config.numClasses;
        // [n, 1, P, P] is [n, P, P, 1] for one channel.
        const probs = tf.tidy(() => tf.transpose(model.predict(tf.tensor4d(patches, [n, p, q, 1], 'float32')), [0, 3, 1, 2]));
        try {
          return Promise.resolve(new Float32Array(probs.dataSync()).subarray(0, n * k * p * q));
        } finally {
          probs.dispose();
        }
      },
    });
    return {
      numRegions: result.regions.length,
      features: result.features,
      numFeatures: result.features.length / Math.max(1, result.regions.length),
      scores: result.scores,
      pseudoLabel: Uint8Array.from(result.maps.pseudoLabel),
      regionIndex: Int32Array.from(result.maps.regionIndex),
      maxProbability: result.maps.maxProbability,
    };
  }
}

/**
 * A stand-in agent: weight = the normalised `reliability` feature, thresholded
 * at `threshold` when given. Records every decision and reward; `update`
 * returns a new version number when rewards arrived since the last one.
 */
export class RuleAgentPort implements AgentPort {
  readonly decisions = new Map<string, { policy: PolicyAddress; weight: number; context: Readonly<Record<string, string>> }>();
  readonly rewards: RewardItem[] = [];
  readonly updates: PolicyAddress[] = [];
  /** The provenance the loop gave each update, in order. */
  readonly updateProvenance: Record<string, string>[] = [];
  private version = 1;
  private next = 0;
  private rewardedSinceUpdate = 0;

  constructor(
    private readonly name = 'rule-agent',
    private readonly threshold?: number,
  ) {}

  act(request: ActRequest, policy: PolicyAddress | undefined): Promise<ActResult> {
    const p = policy ?? { name: this.name, version: this.version };
    const col = FEATURE_INDEX['reliability'] as number;
    const weights = new Float32Array(request.numRows);
    const ids: string[] = [];
    for (let r = 0; r < request.numRows; r++) {
      const v = request.observations[r * request.numFeatures + col] as number;
      weights[r] = this.threshold === undefined ? v : v >= this.threshold ? 1 : 0;
      const id = `d${this.next++}`;
      ids.push(id);
      this.decisions.set(id, { policy: p, weight: weights[r] as number, context: request.context });
    }
    return Promise.resolve({ policy: p, decisionIds: ids, weights });
  }

  feedback(rewards: readonly RewardItem[]): Promise<void> {
    for (const r of rewards) {
      if (!this.decisions.has(r.decisionId)) return Promise.reject(new Error(`unknown decision ${r.decisionId}`));
    }
    this.rewards.push(...rewards);
    this.rewardedSinceUpdate += rewards.length;
    return Promise.resolve();
  }

  update(policy: PolicyAddress, provenance: Readonly<Record<string, string>>): Promise<PolicyAddress | undefined> {
    if (this.rewardedSinceUpdate === 0) return Promise.resolve(undefined);
    this.rewardedSinceUpdate = 0;
    const v = { name: policy.name, version: ++this.version };
    this.updates.push(v);
    this.updateProvenance.push({ ...provenance });
    return Promise.resolve(v);
  }
}
