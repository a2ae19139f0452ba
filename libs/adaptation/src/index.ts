// The adaptation loop of DESIGN.md §4 stage B (EMA teacher → pseudo-labels →
// reliability → per-region weights → weighted self-training → rewards), the
// weighting strategies of every method, the rewards, and the data barrier that
// keeps target labels out of training. Services plug in through the ports.
export { AdaptationConfigError, AdaptationDataError, ForbiddenReadError } from './errors';
export { isMethod, Method, METHODS, TargetSource, targetSourceOf } from './methods';

// Weighting strategies and rewards (pure).
export {
  argmaxLabels,
  confidenceWeights,
  consensusWeights,
  DAFORMER_THRESHOLD,
  entropyWeights,
  naiveWeights,
  regionPixelWeights,
  thresholdRegionWeights,
  weightStatistics,
} from './weighting';
export type { WeightStatistics } from './weighting';
export { episodicReward, proxyReward, regionAccuracy, regionRewards, signedCorrectness, wrongRegionBalance } from './rewards';
export type { ProxyFigures, RegionRewardOptions } from './rewards';
export { labelAgreement, organDice } from './figures';
export { CONSENSUS_VIEW, nextSeverity, shiftVolume, SIMULATED_SHIFT, simulatedShift } from './shift';
export { CONFIDENCE_KEEP_BEST, decideRounds, SOURCE_GUARD } from './stop-rule';
export { components, keepLargestComponents, singleStructureClasses } from './topology';
export type { KeepBestSettings, RoundDecision, RoundProxy } from './stop-rule';

// Data and the target-label barrier.
export { declaredClasses, loadJobData, loadOracleLabels, loadSourceData, openTargetImages, ReadGuard } from './data';
export type { JobData, JobDataRequest, LoadOptions, SourceData, TargetData } from './data';

// Ports and their in-process implementations. The feature schema the agent
// observations follow is re-exported for the services that wire the ports.
export { FEATURE_SCHEMA, NUM_FEATURES } from '@purify/reliability';
export { TEACHER_NORMALIZATION } from './ports';
export type { ActRequest, ActResult, AdaptationPorts, AgentPort, PolicyAddress, PublishedTeacher, ReliabilityPort, RewardItem, ScoredVolume, TeacherPort } from './ports';
export { channelsFirst, LocalReliabilityPort, LocalTeacherPort, RuleAgentPort } from './local-ports';

// The loop.
export { adaptationStep } from './step';
export { dualHostBatch, ParallelAdaptation } from './parallel-step';
export type { ParallelAdaptationOptions } from './parallel-step';
export type { DualBatch, DualStepOptions, DualStepResult } from './step';
export { busiestSlice, CONFIDENCE_FEATURES, DEFAULT_HYPERPARAMETERS, DEFAULT_RL_SETTINGS, DEFAULT_WEIGHT_LEVELS, maskFeatures, RANDOM_POLICY, resolveHyperparameters, resultRoundMetrics, RULE_THRESHOLD, runAdaptation, StopReason, TARGET_LOSSES } from './loop';
export type { AdaptationCallbacks, AdaptationHyperparameters, AdaptationOptions, AdaptationResult, RlPolicyAblation, RlSettings, RoundReport, RoundSnapshot, StepReport, TargetLoss } from './loop';
