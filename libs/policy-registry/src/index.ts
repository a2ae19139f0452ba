export { Agent, AGENT_DEFAULTS, AGENT_PROVENANCE_KEYS } from './agent';
export type { AgentOptions } from './agent';
export { RegistryError, RegistryErrorCode } from './errors';
export { ExperienceStore, HISTOGRAM_BINS, weightBin } from './experience';
export type { Collected, DataSummary, DecisionGroup, DecisionRow, ExperienceOptions } from './experience';
export { ExperimentStore, WEIGHT_SUM_TOLERANCE } from './experiments';
export type { ExperimentUpdate } from './experiments';
export { KeyedMutex } from './mutex';
export { PolicyRegistry, rlSpec } from './policies';
export type { ListFilter, RegisterInput } from './policies';
export { assignArm, routingUniform } from './routing';
export type { WeightedArm } from './routing';
export { PolicyStage } from './types';
export type {
  ActInput,
  ActOutput,
  AgentPolicySpec,
  DecisionOutput,
  Experiment,
  ExperimentArm,
  FeedbackOutput,
  PolicyFactory,
  PolicyMetricsSnapshot,
  PolicyRecord,
  PolicyRef,
  RewardInput,
  UpdateInput,
  UpdateOutput,
  VersionMetric,
} from './types';
export { checkPpoConfig, checkSpec, formatRef } from './validation';
