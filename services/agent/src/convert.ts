// Proto messages ↔ the policy registry's domain types. The registry speaks
// plain TypeScript; only this file knows the wire shapes.
import {
  ActionSpace as WireActionSpace,
  PolicyStage as WireStage,
  type Experiment as WireExperiment,
  type ExperimentArm as WireArm,
  type PolicyMetrics as WireMetrics,
  type PolicyRef as WireRef,
  type PolicySpec as WireSpec,
  type PolicyVersion,
  type PpoHyperparameters,
} from '@purify/proto';
import { PolicyStage, type AgentPolicySpec, type Experiment, type ExperimentArm, type PolicyMetricsSnapshot, type PolicyRecord, type PolicyRef } from '@purify/policy-registry';
import { ActionSpace, type PpoConfig } from '@purify/rl';
import { validate } from '@purify/runtime';

const SPACE_FROM_WIRE: Partial<Record<WireActionSpace, AgentPolicySpec['actionSpace']>> = {
  [WireActionSpace.ACTION_SPACE_DISCRETE]: ActionSpace.Discrete,
  [WireActionSpace.ACTION_SPACE_BETA]: ActionSpace.Beta,
};
const SPACE_TO_WIRE: Record<AgentPolicySpec['actionSpace'], WireActionSpace> = {
  [ActionSpace.Discrete]: WireActionSpace.ACTION_SPACE_DISCRETE,
  [ActionSpace.Beta]: WireActionSpace.ACTION_SPACE_BETA,
};
const STAGE_TO_WIRE: Record<PolicyStage, WireStage> = {
  [PolicyStage.Candidate]: WireStage.POLICY_STAGE_CANDIDATE,
  [PolicyStage.Promoted]: WireStage.POLICY_STAGE_PROMOTED,
  [PolicyStage.Archived]: WireStage.POLICY_STAGE_ARCHIVED,
};

export function specFromWire(spec: WireSpec | undefined, field: string): AgentPolicySpec {
  const s = validate.required(spec, field);
  const actionSpace = SPACE_FROM_WIRE[s.actionSpace];
  if (actionSpace === undefined) {
    throw validate.invalid(`${field}.action_space`, 'must be ACTION_SPACE_DISCRETE or ACTION_SPACE_BETA', WireActionSpace[s.actionSpace] ?? s.actionSpace);
  }
  return { actionSpace, weightLevels: s.weightLevels, hiddenUnits: s.hiddenUnits, numFeatures: s.numFeatures, seed: s.seed, featureSchemaVersion: s.featureSchemaVersion };
}

export function specToWire(spec: AgentPolicySpec): WireSpec {
  return {
    actionSpace: SPACE_TO_WIRE[spec.actionSpace],
    weightLevels: [...spec.weightLevels],
    hiddenUnits: [...spec.hiddenUnits],
    featureSchemaVersion: spec.featureSchemaVersion,
    numFeatures: spec.numFeatures,
    seed: spec.seed,
  };
}

export function refToWire(ref: PolicyRef): WireRef {
  return { name: ref.name, version: ref.version };
}

/** A required PolicyRef, checked for a valid name. */
export function refFromWire(ref: WireRef | undefined, field: string): PolicyRef {
  const r = validate.policyRef(ref, field);
  return { name: r.name, version: r.version };
}

export function versionToWire(rec: PolicyRecord): PolicyVersion {
  return {
    ref: refToWire(rec),
    spec: specToWire(rec.spec),
    stage: STAGE_TO_WIRE[rec.stage],
    parentVersion: rec.parentVersion,
    provenance: { ...rec.provenance },
    metrics: rec.metrics.map((m) => ({ name: m.name, value: m.value, split: m.split, measuredAt: rec.createdAt })),
    createdAt: rec.createdAt,
  };
}

export function metricsToWire(m: PolicyMetricsSnapshot): WireMetrics {
  return {
    ref: refToWire(m.ref),
    decisions: m.decisions,
    rewarded: m.rewarded,
    meanReward: m.meanReward,
    weightHistogram: [...m.weightHistogram],
    shadowDecisions: m.shadowDecisions,
  };
}

export function armsFromWire(arms: readonly WireArm[]): ExperimentArm[] {
  return arms.map((a, i) => ({ name: a.name, policy: refFromWire(a.policy, `arms[${i}].policy`), weight: a.weight, shadow: a.shadow }));
}

export function experimentToWire(e: Experiment): WireExperiment {
  return {
    name: e.name,
    arms: e.arms.map((a) => ({ name: a.name, policy: refToWire(a.policy), weight: a.weight, shadow: a.shadow })),
    active: e.active,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
    salt: e.salt,
  };
}

/** Hyper-parameters of an UpdateRequest; fields left at 0 take the service defaults. */
export function ppoFromWire(h: PpoHyperparameters | undefined): Partial<PpoConfig> {
  if (!h) return {};
  const out: { -readonly [K in keyof PpoConfig]?: number } = {};
  for (const [key, value] of Object.entries(h) as [keyof PpoHyperparameters, number][]) if (value !== 0) out[key] = value;
  return out;
}
