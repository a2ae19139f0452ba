import { join } from 'node:path';
import { AgentServiceService, type AgentServiceServer, type FeatureMatrix } from '@purify/proto';
import { Agent, AGENT_DEFAULTS, RegistryError, formatRef } from '@purify/policy-registry';
import { DEFAULT_PPO_CONFIG, RlError, createPolicy, deserializePolicy, selectRlBackend } from '@purify/rl';
import { PurifyError, SpanAttr, addSpanAttributes, opt, redactForLog, runService, serverSchema, serviceMetrics, unary, validate, type DomainHandlers, type ServiceDefinitionSpec } from '@purify/runtime';
import { armsFromWire, experimentToWire, metricsToWire, ppoFromWire, refFromWire, refToWire, specFromWire, versionToWire } from './convert';

const schema = {
  ...serverSchema('agent'),
  artifactsDir: opt.directory('Artifact store root; policies, experiments and buffers live in <dir>/agent', 'artifacts', 'write'),
  replicaId: opt.string('Name of this replica: its experience buffer is <dir>/agent/buffers/<id> and prefixes its decision ids (distinct per replica sharing a store)', AGENT_DEFAULTS.replicaId),
  decisionTtlMs: opt.int('Decisions without a reward after this long expire (ms)', AGENT_DEFAULTS.decisionTtlMs, { min: 1000 }),
  maxBufferedDecisions: opt.int('Most unconsumed decisions kept per policy version; the oldest are dropped', AGENT_DEFAULTS.maxBufferedDecisions, { min: 1, max: 100_000_000 }),
  autoUpdateTransitions: opt.int('Run a PPO update automatically when a version has this many rewarded transitions (0 = never)', AGENT_DEFAULTS.autoUpdateTransitions, { min: 0 }),
  autoPromote: opt.bool('Promote the versions that automatic updates create', AGENT_DEFAULTS.autoPromote),
};

/** Shape and value checks shared by every RPC that carries observations. */
function checkObservations(m: FeatureMatrix | undefined, field: string): FeatureMatrix {
  const obs = validate.required(m, field);
  if (obs.numRows === 0 || obs.numFeatures === 0) {
    throw validate.invalid(`${field}`, 'must have num_rows > 0 and num_features > 0', [obs.numRows, obs.numFeatures]);
  }
  if (obs.values.length !== obs.numRows * obs.numFeatures) {
    throw validate.invalid(`${field}.values`, `must hold num_rows * num_features = ${obs.numRows * obs.numFeatures} values`, obs.values.length);
  }
  const bad = obs.values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw validate.invalid(`${field}.values[${bad}]`, `must be finite (row ${Math.floor(bad / obs.numFeatures)}, feature ${bad % obs.numFeatures})`, String(obs.values[bad]));
  }
  return obs;
}

/** Registry and RL errors → the runtime's error type (same codes; bad RL input is INVALID_ARGUMENT). */
async function mapped<T>(work: () => Promise<T> | T): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof RegistryError) throw new PurifyError(err.code, err.message, { cause: err });
    if (err instanceof RlError) throw new PurifyError('INVALID_ARGUMENT', err.message, { cause: err });
    throw err;
  }
}

export const agentService: ServiceDefinitionSpec<typeof schema> = {
  kind: 'agent',
  schema,
  build: async (config, logger) => {
    const backend = await selectRlBackend();
    const agent = await Agent.open({
      root: join(config.artifactsDir, 'agent'),
      factory: { create: createPolicy, deserialize: (bytes) => deserializePolicy(bytes) },
      ppoDefaults: DEFAULT_PPO_CONFIG,
      replicaId: config.replicaId,
      decisionTtlMs: config.decisionTtlMs,
      maxBufferedDecisions: config.maxBufferedDecisions,
      autoUpdateTransitions: config.autoUpdateTransitions,
      autoPromote: config.autoPromote,
      onAutoUpdateError: (policy, error) => logger.warn('automatic update failed', { policy: formatRef(policy), error: redactForLog(error instanceof Error ? error.message : String(error)) }),
      // purify_agent_rewards_total / _reward_sum by the version that decided; purify_loaded_version{purify_kind="policy"} = the promoted version.
      onReward: (policy, reward) => serviceMetrics.agentReward(reward, policy),
      onPromoted: (policy) => serviceMetrics.loadedVersion('policy', policy.name, policy.version),
    });
    return {
      definition: AgentServiceService,
      capabilities: () => ({
        'tfjs.backend': backend.backend,
        'agent.replica': config.replicaId,
        'agent.auto_update_transitions': String(config.autoUpdateTransitions),
      }),
      onShutdown: () => agent.close(),
      implementation: (env): DomainHandlers<AgentServiceServer> => ({
        act: unary(env, 'Act', (req, ctx) =>
          mapped(async () => {
            if (req.target === undefined) throw validate.invalid('target', 'must name a `policy` or an `experiment`', undefined);
            const obs = checkObservations(req.observations, 'observations');
            const target = req.target.$case === 'policy' ? { policy: refFromWire(req.target.policy, 'policy') } : { experiment: req.target.experiment };
            const out = await agent.act({
              target,
              routingKey: req.routingKey,
              observations: Float32Array.from(obs.values),
              numRows: obs.numRows,
              numFeatures: obs.numFeatures,
              schemaVersion: obs.schemaVersion,
              deterministic: req.deterministic,
              context: req.context,
            });
            addSpanAttributes({ [SpanAttr.PolicyName]: out.policy.name, [SpanAttr.PolicyVersion]: out.policy.version, [SpanAttr.RegionCount]: obs.numRows, ...(out.experiment ? { [SpanAttr.Experiment]: out.experiment } : {}) }, ctx);
            return {
              policy: refToWire(out.policy),
              decisions: out.decisions.map((d) => ({ ...d })),
              shadowPolicy: out.shadowPolicy ? refToWire(out.shadowPolicy) : undefined,
              experiment: out.experiment ?? '',
              arm: out.arm ?? '',
            };
          }),
        ),
        feedback: unary(env, 'Feedback', (req) =>
          mapped(async () => {
            req.rewards.forEach((r, i) => {
              validate.nonEmptyString(r.decisionId, `rewards[${i}].decision_id`);
              validate.finiteNumber(r.reward, `rewards[${i}].reward`);
            });
            const out = await agent.feedback(req.rewards);
            return { accepted: out.accepted, buffered: { ...out.buffered }, updated: out.updated.map(refToWire) };
          }),
        ),
        update: unary(env, 'Update', (req, ctx) =>
          mapped(async () => {
            const out = await agent.update({
              policy: refFromWire(req.policy, 'policy'),
              config: ppoFromWire(req.hyperparameters),
              minTransitions: req.minTransitions,
              promote: req.promote,
              provenance: req.provenance,
            });
            addSpanAttributes({ [SpanAttr.PolicyName]: out.record.name, [SpanAttr.PolicyVersion]: out.record.version, [SpanAttr.BatchSize]: out.transitionsUsed }, ctx);
            return {
              policy: versionToWire(out.record),
              transitionsUsed: out.transitionsUsed,
              policyLoss: out.stats.policyLoss,
              valueLoss: out.stats.valueLoss,
              entropy: out.stats.entropy,
              approxKl: out.stats.approxKl,
              epochsRun: out.stats.epochsRun,
            };
          }),
        ),
        registerPolicy: unary(env, 'RegisterPolicy', (req) =>
          mapped(async () => {
            const spec = specFromWire(req.spec, 'spec');
            const rec = await agent.policies.register({
              name: req.name,
              spec,
              provenance: req.provenance,
              ...(req.weights.length > 0 ? { weights: new Uint8Array(req.weights) } : {}),
            });
            return versionToWire(rec);
          }),
        ),
        listPolicies: unary(env, 'ListPolicies', (req) =>
          mapped(() => ({ policies: agent.policies.list({ name: req.name, includeArchived: req.includeArchived }).map(versionToWire) })),
        ),
        getPolicy: unary(env, 'GetPolicy', (req) => mapped(() => versionToWire(agent.policies.get(refFromWire(req.ref, 'ref'))))),
        promotePolicy: unary(env, 'PromotePolicy', (req) => mapped(async () => versionToWire(await agent.policies.promote(refFromWire(req.ref, 'ref'))))),
        archivePolicy: unary(env, 'ArchivePolicy', (req) => mapped(async () => versionToWire(await agent.policies.archive(refFromWire(req.ref, 'ref'))))),
        getPolicyMetrics: unary(env, 'GetPolicyMetrics', (req) => mapped(() => metricsToWire(agent.metrics(refFromWire(req.ref, 'ref'))))),
        createExperiment: unary(env, 'CreateExperiment', (req) =>
          mapped(async () => experimentToWire(await agent.experiments.create(req.name, armsFromWire(req.arms)))),
        ),
        updateExperiment: unary(env, 'UpdateExperiment', (req) =>
          mapped(async () => experimentToWire(await agent.experiments.update(req.name, { arms: armsFromWire(req.arms), active: req.active }))),
        ),
        getExperiment: unary(env, 'GetExperiment', (req) => mapped(() => experimentToWire(agent.experiments.get(req.name)))),
        listExperiments: unary(env, 'ListExperiments', () => mapped(() => ({ experiments: agent.experiments.list().map(experimentToWire) }))),
      }),
    };
  },
};

export function main(argv: readonly string[]): void {
  runService(agentService, argv);
}
