/**
 * The ports of the adaptation loop: everything it needs from the other
 * services, as small interfaces. The trainer service implements them with gRPC
 * clients (segmenter, reliability, agent); tests and single-node runs use the
 * in-process implementations in `local-ports.ts`.
 *
 * Volumes handed to a port are `SliceVolume`s of the working grid: `image`
 * `[z, y, x]` float32 already normalised to [0, 1] by the trainer (a published
 * teacher declares the identity normalisation, see `TEACHER_NORMALIZATION`).
 */
import type { NormalizationSpec } from '@purify/artifacts';
import type { SegModel } from '@purify/models';
import type { SliceVolume } from '@purify/training';

/**
 * The normalisation a published round teacher declares: a "CT window" of
 * [0, 1], i.e. the identity on images the trainer already normalised.
 */
export const TEACHER_NORMALIZATION: NormalizationSpec = Object.freeze({ kind: 'ct-window', lowHu: 0, highHu: 1 });

/** A teacher made available for inference (registry name and version). */
export interface PublishedTeacher {
  readonly name: string;
  readonly version: number;
}

export interface TeacherPort {
  /**
   * Makes the teacher's current weights servable (ONNX export → registry →
   * LoadModel) and returns its address. `model` must not change until the
   * round's inference is done.
   */
  publish(model: SegModel, round: number, signal?: AbortSignal): Promise<PublishedTeacher>;
  /** Class probabilities `[K, z, y, x]` float32 of `volume` (the whole image). */
  predict(teacher: PublishedTeacher, volume: SliceVolume, signal?: AbortSignal): Promise<Float32Array>;
}

/** One scored volume (proto `ScoreResult` + the maps the loop needs). */
export interface ScoredVolume {
  readonly numRegions: number;
  /** Raw region features `[regions, F]` row-major, columns per `FEATURE_SCHEMA` of `@purify/reliability`. */
  readonly features: Float32Array;
  readonly numFeatures: number;
  /** Region reliability score in [0, 1], `[regions]`. */
  readonly scores: Float32Array;
  /** Pseudo-label (argmax of the whole-image prediction) `[z, y, x]`. */
  readonly pseudoLabel: Uint8Array;
  /** Region index of every pixel `[z, y, x]`. */
  readonly regionIndex: Int32Array;
  /** Confidence of the pseudo-label (max over classes of the whole-image prediction) `[z, y, x]`. */
  readonly maxProbability: Float32Array;
}

export interface ReliabilityPort {
  score(teacher: PublishedTeacher, volume: SliceVolume, round: number, signal?: AbortSignal): Promise<ScoredVolume>;
}

export interface PolicyAddress {
  readonly name: string;
  readonly version: number;
}

export interface ActRequest {
  /** Normalised features `[rows, F]` in [0, 1] (after `normalizeFeatures`). */
  readonly observations: Float32Array;
  readonly numRows: number;
  readonly numFeatures: number;
  /** Stable key: the same case meets the same policy (A/B experiments). */
  readonly routingKey: string;
  readonly deterministic: boolean;
  readonly context: Readonly<Record<string, string>>;
}

export interface ActResult {
  /** The policy version that decided. */
  readonly policy: PolicyAddress;
  readonly decisionIds: readonly string[];
  /** Weight per row in [0, 1]. */
  readonly weights: Float32Array;
}

export interface RewardItem {
  readonly decisionId: string;
  readonly reward: number;
  readonly done: boolean;
}

export interface AgentPort {
  /** Decides with `policy` when given (a version returned earlier), else with the job's configured policy or experiment. */
  act(request: ActRequest, policy: PolicyAddress | undefined, signal?: AbortSignal): Promise<ActResult>;
  feedback(rewards: readonly RewardItem[], signal?: AbortSignal): Promise<void>;
  /**
   * PPO on `policy`'s rewarded experience; the new version, or undefined when
   * there was too little experience. `provenance` (run, round, phase) is stored
   * with the new version.
   */
  update(policy: PolicyAddress, provenance: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<PolicyAddress | undefined>;
}

export interface AdaptationPorts {
  readonly teacher: TeacherPort;
  /** Needed by `rule` and `rl`. */
  readonly reliability?: ReliabilityPort | undefined;
  /** Needed by `rl`. */
  readonly agent?: AgentPort | undefined;
}
