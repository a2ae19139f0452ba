import type { Policy, PolicySpec, PpoConfig, UpdateStats } from '@purify/rl';

/** Lifecycle of a policy version. Stage is the only mutable property of a version. */
export const PolicyStage = {
  /** Registered; usable by explicit version and in experiments. */
  Candidate: 'candidate',
  /** What `{name, version: 0}` resolves to; exactly one (or none) per name. */
  Promoted: 'promoted',
  /** Kept for provenance; refuses new decisions and updates. */
  Archived: 'archived',
} as const;
export type PolicyStage = (typeof PolicyStage)[keyof typeof PolicyStage];

/** `{name, version}`; version 0 means "the promoted version of name". */
export interface PolicyRef {
  readonly name: string;
  readonly version: number;
}

/** The RL library's spec plus the feature schema the observations must follow. */
export interface AgentPolicySpec extends PolicySpec {
  /** Version of the reliability feature schema the columns follow (e.g. "v1"). */
  readonly featureSchemaVersion: string;
}

/** A named scalar recorded with a version (e.g. the PPO losses of its update). */
export interface VersionMetric {
  readonly name: string;
  readonly value: number;
  /** What it was measured on, e.g. "ppo-update". */
  readonly split: string;
}

/** One immutable policy version as the registry stores it (`meta.json`) plus its current stage. */
export interface PolicyRecord {
  readonly name: string;
  /** 1, 2, 3 … consecutive per name. */
  readonly version: number;
  readonly spec: AgentPolicySpec;
  readonly stage: PolicyStage;
  /** Version it was updated from; 0 = registered (fresh or imported weights). */
  readonly parentVersion: number;
  /** Free-form provenance: data summary, hyper-parameters, trigger, user-given keys. */
  readonly provenance: Readonly<Record<string, string>>;
  readonly metrics: readonly VersionMetric[];
  readonly createdAt: Date;
}

/** Builds RL policies; the service passes `@purify/rl`, tests a fake. */
export interface PolicyFactory {
  create(spec: PolicySpec): Policy;
  deserialize(bytes: Uint8Array): Policy;
}

/** An arm of an A/B experiment. */
export interface ExperimentArm {
  readonly name: string;
  /** Version 0 follows the promoted version of `policy.name` at decision time. */
  readonly policy: PolicyRef;
  /** Share of routing keys in [0, 1]; the live arms' weights sum to 1. Ignored for shadow arms. */
  readonly weight: number;
  /** Decides on every request too, but only for logging (offline evaluation). */
  readonly shadow: boolean;
}

export interface Experiment {
  readonly name: string;
  readonly arms: readonly ExperimentArm[];
  readonly active: boolean;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  /** Mixed into the routing hash; fixed at creation. */
  readonly salt: string;
}

/** What `Act` is asked. */
export interface ActInput {
  readonly target: { readonly policy: PolicyRef } | { readonly experiment: string };
  /** Stable key (job or case id): experiment assignment and trajectory grouping. */
  readonly routingKey: string;
  /** Row-major [numRows, numFeatures] float32 region features. */
  readonly observations: Float32Array;
  readonly numRows: number;
  readonly numFeatures: number;
  /** Feature schema version the columns follow; must equal the policy's. */
  readonly schemaVersion: string;
  readonly deterministic: boolean;
  readonly context: Readonly<Record<string, string>>;
}

export interface DecisionOutput {
  readonly decisionId: string;
  /** Supervision weight in [0, 1]. */
  readonly weight: number;
  readonly logProb: number;
  readonly value: number;
  /** Level index (discrete) or -1 (Beta). */
  readonly level: number;
}

export interface ActOutput {
  /** The version whose decisions are returned and must be used. */
  readonly policy: PolicyRef;
  readonly decisions: readonly DecisionOutput[];
  /** The shadow version that also decided (logged, not to be used). */
  readonly shadowPolicy?: PolicyRef;
  readonly experiment?: string;
  readonly arm?: string;
}

export interface RewardInput {
  readonly decisionId: string;
  readonly reward: number;
  /** The episode ended after this decision. */
  readonly done: boolean;
}

export interface FeedbackOutput {
  readonly accepted: number;
  /** Rewarded, not yet consumed transitions per affected version, keyed "name:version". */
  readonly buffered: Readonly<Record<string, number>>;
  /** Versions created by automatic updates this feedback triggered. */
  readonly updated: readonly PolicyRef[];
}

export interface UpdateInput {
  readonly policy: PolicyRef;
  /** Overrides of the configured PPO defaults. */
  readonly config?: Partial<PpoConfig>;
  /** Refuse with fewer rewarded transitions than this (at least 1 is always needed). */
  readonly minTransitions?: number;
  readonly promote?: boolean;
  /**
   * The caller's context (job, data set, round, phase), stored in the new
   * version's provenance beside the agent's own keys ({@link AGENT_PROVENANCE_KEYS}),
   * which the caller cannot set.
   */
  readonly provenance?: Readonly<Record<string, string>>;
}

export interface UpdateOutput {
  readonly record: PolicyRecord;
  readonly transitionsUsed: number;
  readonly stats: UpdateStats;
}

/** Per-version counters (kept across restarts and buffer compaction). */
export interface PolicyMetricsSnapshot {
  readonly ref: PolicyRef;
  /** Live decisions (whose weights were returned to callers). */
  readonly decisions: number;
  /** Rewards received (live and shadow decisions). */
  readonly rewarded: number;
  /** Mean of those rewards; 0 when none. */
  readonly meanReward: number;
  /** Chosen weights (live and shadow) in 10 equal bins over [0, 1]; weight 1 falls in the last bin. */
  readonly weightHistogram: readonly number[];
  readonly shadowDecisions: number;
  /** Decisions still waiting for a reward. */
  readonly pending: number;
  /** Rewarded live transitions not yet consumed by an update. */
  readonly buffered: number;
}
