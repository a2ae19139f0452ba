import { join } from 'node:path';
import type { Policy, PpoConfig } from '@purify/rl';
import { failedPrecondition, invalid } from './errors';
import { ExperienceStore, type DataSummary, type DecisionGroup, type DecisionRow } from './experience';
import { ExperimentStore } from './experiments';
import { KeyedMutex } from './mutex';
import { PolicyRegistry } from './policies';
import { assignArm } from './routing';
import {
  PolicyStage,
  type ActInput,
  type ActOutput,
  type FeedbackOutput,
  type PolicyFactory,
  type PolicyMetricsSnapshot,
  type PolicyRecord,
  type PolicyRef,
  type RewardInput,
  type UpdateInput,
  type UpdateOutput,
  type VersionMetric,
} from './types';
import { checkName, checkPpoConfig, formatRef } from './validation';

export interface AgentOptions {
  /** Root of the agent's part of the artifact store, e.g. `<artifacts>/agent`. */
  readonly root: string;
  readonly factory: PolicyFactory;
  /** PPO settings an update uses where the request leaves them out. */
  readonly ppoDefaults: PpoConfig;
  /**
   * Names this process's experience buffer (`<root>/buffers/<replicaId>/`) and
   * prefixes its decision ids. Replicas sharing a store need distinct ids.
   */
  readonly replicaId?: string;
  /** Unrewarded decisions expire after this long (default 24 h). */
  readonly decisionTtlMs?: number;
  /** Most unconsumed decisions kept per policy version; the oldest are dropped (default 200 000). */
  readonly maxBufferedDecisions?: number;
  /** Run an update automatically once a version buffers this many rewarded transitions (0 = never, the default). */
  readonly autoUpdateTransitions?: number;
  /** Promote the versions automatic updates create (default false: they stay candidates). */
  readonly autoPromote?: boolean;
  /** Called when an automatic update fails (the feedback that triggered it is still accepted). */
  readonly onAutoUpdateError?: (policy: PolicyRef, error: unknown) => void;
  /** Called once per accepted reward, after it is stored, with the version whose decision it rewards (metrics; must not throw). */
  readonly onReward?: (policy: PolicyRef, reward: number) => void;
  /**
   * Called with a name's promoted version — the one Act serves for version 0 —
   * when this process first sees it (every name, at open) and whenever it sees
   * it change: Register/Promote/Archive here, or another replica's change on
   * the next request for that name. Version 0 = the name has no promoted
   * version any more (metrics; must not throw).
   */
  readonly onPromoted?: (policy: PolicyRef) => void;
  readonly now?: () => Date;
}

export const AGENT_DEFAULTS = {
  replicaId: 'main',
  decisionTtlMs: 24 * 3600 * 1000,
  maxBufferedDecisions: 200_000,
  autoUpdateTransitions: 0,
  autoPromote: false,
} as const;

const MAX_CONTEXT_ENTRIES = 64;

/**
 * The agent's logic: a policy registry, A/B experiments and per-version
 * experience, persisted under one folder and safe under concurrent requests.
 * Each mutation is serialised by an async mutex: registry writes per policy
 * name, experiment writes per experiment, experience writes through one log
 * lock (a request's decisions or rewards are one append), updates per version.
 */
export class Agent {
  private readonly updateMutex = new KeyedMutex();

  private constructor(
    readonly policies: PolicyRegistry,
    readonly experiments: ExperimentStore,
    private readonly experience: ExperienceStore,
    private readonly options: AgentOptions & typeof AGENT_DEFAULTS,
  ) {}

  /** Opens (creating) the store under `options.root` and reloads everything in it. */
  static async open(options: AgentOptions): Promise<Agent> {
    const o = { ...AGENT_DEFAULTS, ...stripUndefined(options) } as AgentOptions & typeof AGENT_DEFAULTS;
    checkName(o.replicaId, 'replica_id');
    if (!(o.decisionTtlMs > 0)) throw invalid('decision_ttl_ms', 'must be > 0', o.decisionTtlMs);
    if (!(Number.isSafeInteger(o.maxBufferedDecisions) && o.maxBufferedDecisions > 0)) throw invalid('max_buffered_decisions', 'must be an integer > 0', o.maxBufferedDecisions);
    if (!(Number.isSafeInteger(o.autoUpdateTransitions) && o.autoUpdateTransitions >= 0)) throw invalid('auto_update_transitions', 'must be an integer >= 0', o.autoUpdateTransitions);
    const now = o.now ?? (() => new Date());
    const policies = new PolicyRegistry(o.root, o.factory, now, o.onPromoted);
    if (o.onPromoted) policies.refreshAll();
    const experiments = new ExperimentStore(o.root, policies, now);
    const experience = await ExperienceStore.open(join(o.root, 'buffers', o.replicaId), {
      ttlMs: o.decisionTtlMs,
      maxBuffered: o.maxBufferedDecisions,
      replicaId: o.replicaId,
      now,
    });
    return new Agent(policies, experiments, experience, o);
  }

  /**
   * Decides a weight per observation row with the target policy, or with the
   * arm of the experiment the routing key is assigned to (plus its shadow arm,
   * whose decisions are logged but not returned).
   */
  async act(input: ActInput): Promise<ActOutput> {
    checkObservations(input);
    if (input.routingKey.length > 256) throw invalid('routing_key', 'must be at most 256 characters', `${input.routingKey.length} characters`);
    const ctx = Object.entries(input.context);
    if (ctx.length > MAX_CONTEXT_ENTRIES) throw invalid('context', `must have at most ${MAX_CONTEXT_ENTRIES} entries`, ctx.length);
    for (const [k, v] of ctx) if (k.length > 128 || v.length > 1024) throw invalid(`context["${k.slice(0, 128)}"]`, 'must have a key of at most 128 and a value of at most 1024 characters', `${k.length}/${v.length} characters`);

    let live: PolicyRecord;
    let shadow: PolicyRecord | undefined;
    let experiment: string | undefined;
    let arm: string | undefined;
    if ('policy' in input.target) {
      live = this.policies.get(input.target.policy, 'policy');
    } else {
      const exp = this.experiments.get(input.target.experiment, 'experiment');
      if (!exp.active) throw failedPrecondition(`experiment "${exp.name}" is not active`);
      if (input.routingKey.length === 0) throw invalid('routing_key', 'must be non-empty when the target is an experiment (it decides the arm)', input.routingKey);
      const liveArms = exp.arms.filter((a) => !a.shadow);
      const chosen = liveArms[assignArm(exp.salt, liveArms, input.routingKey)];
      if (!chosen) throw failedPrecondition(`experiment "${exp.name}" has no live arm with a positive weight`);
      live = this.policies.get(chosen.policy, `experiment "${exp.name}" arm "${chosen.name}"`);
      experiment = exp.name;
      arm = chosen.name;
      const shadowArm = exp.arms.find((a) => a.shadow);
      if (shadowArm) {
        try {
          const rec = this.policies.get(shadowArm.policy);
          // A shadow arm that cannot decide on this input is skipped: it must never fail the live decision.
          if (rec.stage !== PolicyStage.Archived && rec.spec.numFeatures === input.numFeatures && rec.spec.featureSchemaVersion === input.schemaVersion) shadow = rec;
        } catch {
          shadow = undefined;
        }
      }
    }
    if (live.stage === PolicyStage.Archived) throw failedPrecondition(`policy ${formatRef(live)} is archived and refuses new decisions`);
    if (input.numFeatures !== live.spec.numFeatures) {
      throw invalid('observations.num_features', `must equal the num_features of policy ${formatRef(live)} (${live.spec.numFeatures})`, input.numFeatures);
    }
    if (input.schemaVersion !== live.spec.featureSchemaVersion) {
      throw invalid('observations.schema_version', `must be the feature schema of policy ${formatRef(live)} (${JSON.stringify(live.spec.featureSchemaVersion)})`, input.schemaVersion);
    }

    const decide = (rec: PolicyRecord, isShadow: boolean): DecisionGroup => {
      const res = this.policies.policy(rec).act(input.observations, input.numRows, { deterministic: input.deterministic });
      const rows: DecisionRow[] = [];
      for (let i = 0; i < input.numRows; i++) {
        rows.push({
          row: i,
          observation: input.observations.slice(i * input.numFeatures, (i + 1) * input.numFeatures),
          action: res.actions[i] as number,
          logProb: res.logProbs[i] as number,
          value: res.values[i] as number,
          weight: res.weights[i] as number,
          level: res.levels[i] as number,
        });
      }
      return { policy: { name: rec.name, version: rec.version }, routingKey: input.routingKey, shadow: isShadow, context: input.context, rows };
    };
    const groups = [decide(live, false)];
    if (shadow) groups.push(decide(shadow, true));
    const ids = await this.experience.record(groups);
    const liveRows = (groups[0] as DecisionGroup).rows;
    return {
      policy: { name: live.name, version: live.version },
      decisions: liveRows.map((r, i) => ({ decisionId: ids[0]?.[i] as string, weight: r.weight, logProb: r.logProb, value: r.value, level: r.level })),
      ...(shadow ? { shadowPolicy: { name: shadow.name, version: shadow.version } } : {}),
      ...(experiment !== undefined ? { experiment, arm } : {}),
    };
  }

  /** Rewards earlier decisions (all or nothing), then runs due automatic updates. */
  async feedback(rewards: readonly RewardInput[]): Promise<FeedbackOutput> {
    const versions = await this.experience.reward(rewards);
    const affected = [...new Map(versions.map((ref) => [formatRef(ref), ref])).values()];
    const onReward = this.options.onReward;
    if (onReward) rewards.forEach((r, i) => onReward(versions[i] as PolicyRef, r.reward));
    const updated: PolicyRef[] = [];
    const threshold = this.options.autoUpdateTransitions;
    if (threshold > 0) {
      for (const ref of affected) {
        if (this.experience.buffered(ref) < threshold) continue;
        try {
          if (this.policies.get(ref).stage === PolicyStage.Archived) continue;
          const out = await this.update({ policy: ref, minTransitions: threshold, promote: this.options.autoPromote }, 'auto-update');
          updated.push({ name: out.record.name, version: out.record.version });
        } catch (err) {
          this.options.onAutoUpdateError?.(ref, err);
        }
      }
    }
    const buffered: Record<string, number> = {};
    for (const ref of affected) buffered[formatRef(ref)] = this.experience.buffered(ref);
    return { accepted: rewards.length, buffered, updated };
  }

  /**
   * PPO on a version's rewarded experience; registers the result as a new
   * version (parent = that version) and marks the experience consumed. The
   * consumption is written after the new version, so a crash in between can
   * only reuse experience, never lose it.
   */
  async update(input: UpdateInput, trigger: 'update' | 'auto-update' = 'update'): Promise<UpdateOutput> {
    const parent = this.policies.get(input.policy, 'policy');
    if (parent.stage === PolicyStage.Archived) throw failedPrecondition(`policy ${formatRef(parent)} is archived; updates start from a live version`);
    const config = checkPpoConfig(this.options.ppoDefaults, input.config);
    const minTransitions = input.minTransitions ?? 1;
    if (!Number.isSafeInteger(minTransitions) || minTransitions < 0) throw invalid('min_transitions', 'must be an integer >= 0', minTransitions);
    const given = input.provenance ?? {};
    const reserved = Object.keys(given).filter(isAgentProvenanceKey);
    if (reserved.length > 0) throw invalid('provenance', `may not set the keys the agent records itself (${AGENT_PROVENANCE_KEYS.join(', ')})`, reserved.join(', '));
    return this.updateMutex.run(formatRef(parent), async () => {
      const data = this.experience.collect(parent);
      const needed = Math.max(1, minTransitions);
      if (data.summary.transitions < needed) {
        throw failedPrecondition(`policy ${formatRef(parent)} has ${data.summary.transitions} rewarded transitions buffered; the update needs at least ${needed} (min_transitions)`);
      }
      const base: Policy = this.policies.policy(parent);
      const { policy, stats } = base.update(data.trajectories, config);
      const metrics: VersionMetric[] = [
        ['transitions', stats.transitions],
        ['policy_loss', stats.policyLoss],
        ['value_loss', stats.valueLoss],
        ['entropy', stats.entropy],
        ['approx_kl', stats.approxKl],
        ['epochs_run', stats.epochsRun],
      ].map(([name, value]) => ({ name: name as string, value: value as number, split: 'ppo-update' }));
      let record: PolicyRecord;
      try {
        record = await this.policies.register({
          name: parent.name,
          spec: parent.spec,
          policy,
          parentVersion: parent.version,
          provenance: { ...given, ...provenanceOf(trigger, parent, data.summary, config, this.options.replicaId) },
          metrics,
          promote: input.promote ?? false,
        });
      } catch (err) {
        policy.dispose();
        throw err;
      }
      await this.experience.consume(data.ids);
      return { record, transitionsUsed: data.summary.transitions, stats };
    });
  }

  /** Counters of a version (version 0 = the promoted one). */
  metrics(ref: PolicyRef): PolicyMetricsSnapshot {
    return this.experience.metrics(this.policies.get(ref, 'ref'));
  }

  async close(): Promise<void> {
    await this.experience.close();
    this.policies.close();
  }
}

function checkObservations(input: ActInput): void {
  if (!Number.isSafeInteger(input.numRows) || !Number.isSafeInteger(input.numFeatures) || input.numRows < 1 || input.numFeatures < 1) {
    throw invalid('observations', 'must have num_rows > 0 and num_features > 0', [input.numRows, input.numFeatures]);
  }
  if (input.observations.length !== input.numRows * input.numFeatures) {
    throw invalid('observations.values', `must hold num_rows * num_features = ${input.numRows * input.numFeatures} values`, input.observations.length);
  }
  const bad = input.observations.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw invalid(`observations.values[${bad}]`, `must be finite (row ${Math.floor(bad / input.numFeatures)}, feature ${bad % input.numFeatures})`, String(input.observations[bad]));
  }
}

/** The provenance keys an update records itself: these names and the `data.` / `ppo.` prefixes. */
export const AGENT_PROVENANCE_KEYS: readonly string[] = Object.freeze(['trigger', 'parent', 'replica', 'data.*', 'ppo.*']);

function isAgentProvenanceKey(key: string): boolean {
  return key === 'trigger' || key === 'parent' || key === 'replica' || key.startsWith('data.') || key.startsWith('ppo.');
}

function provenanceOf(trigger: string, parent: PolicyRecord, s: DataSummary, config: PpoConfig, replica: string): Record<string, string> {
  const out: Record<string, string> = {
    trigger,
    parent: formatRef(parent),
    replica,
    'data.transitions': String(s.transitions),
    'data.trajectories': String(s.trajectories),
    'data.episodes': String(s.episodes),
    'data.reward_mean': String(s.rewardMean),
    'data.reward_min': String(s.rewardMin),
    'data.reward_max': String(s.rewardMax),
    'data.routing_keys': String(s.routingKeys),
  };
  if (s.firstDecisionAt) out['data.first_decision_at'] = s.firstDecisionAt.toISOString();
  if (s.lastDecisionAt) out['data.last_decision_at'] = s.lastDecisionAt.toISOString();
  for (const [k, v] of Object.entries(config)) out[`ppo.${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`] = String(v);
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
