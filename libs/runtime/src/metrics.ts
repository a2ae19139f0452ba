import { metrics, type Counter, type Gauge, type Histogram, type Meter, type MeterProvider, type UpDownCounter } from '@opentelemetry/api';
import { version as VERSION } from '../package.json';

/**
 * Metrics every service records. The handler wrappers record the per-RPC ones;
 * services call {@link serviceMetrics} for their own. Instruments are looked up
 * from the global MeterProvider on use (and re-created when it changes), so
 * they work whenever `startMetrics` ran, before or after this module loaded,
 * and cost nothing when metrics are off.
 *
 * Names as Prometheus shows them (dots become `_`, counters get `_total`,
 * histograms `_bucket`/`_sum`/`_count`; the unit is in `# UNIT`, not the name):
 *
 * | instrument | Prometheus | labels |
 * |---|---|---|
 * | `purify.rpc.server.requests` counter | `purify_rpc_server_requests_total` | `rpc_service`, `rpc_method`, `rpc_grpc_status_code`, `rpc_grpc_status` |
 * | `rpc.server.call.duration` histogram (s) | `rpc_server_call_duration_*` | same |
 * | `purify.inference.voxels` counter | `purify_inference_voxels_total` | `purify_model_name`, `purify_model_version` |
 * | `purify.inference.throughput` histogram (voxels/s) | `purify_inference_throughput_*` | same |
 * | `purify.training.step.duration` histogram (s) | `purify_training_step_duration_*` | `purify_model_name` |
 * | `purify.queue.depth` gauge | `purify_queue_depth` | `purify_queue` |
 * | `purify.agent.rewards` counter | `purify_agent_rewards_total` | `purify_policy_name`, `purify_policy_version` |
 * | `purify.agent.reward.sum` up-down counter | `purify_agent_reward_sum` | same |
 * | `purify.loaded.version` gauge | `purify_loaded_version` | `purify_kind` (model/policy), `purify_name` |
 *
 * Label values are names, versions and status codes only — never patient data.
 * Which service records which, and when: docs/deploying.md § Metrics.
 */

export const MetricName = {
  RpcRequests: 'purify.rpc.server.requests',
  RpcDuration: 'rpc.server.call.duration',
  InferenceVoxels: 'purify.inference.voxels',
  InferenceThroughput: 'purify.inference.throughput',
  TrainingStepDuration: 'purify.training.step.duration',
  QueueDepth: 'purify.queue.depth',
  AgentRewards: 'purify.agent.rewards',
  AgentRewardSum: 'purify.agent.reward.sum',
  LoadedVersion: 'purify.loaded.version',
} as const;

/** A named, versioned artifact (model or policy) as metric labels see it. */
export interface VersionRef {
  readonly name: string;
  readonly version: number;
}

interface Instruments {
  readonly meter: Meter;
  readonly rpcRequests: Counter;
  readonly rpcDuration: Histogram;
  readonly inferenceVoxels: Counter;
  readonly inferenceThroughput: Histogram;
  readonly trainingStep: Histogram;
  readonly queueDepth: Gauge;
  readonly agentRewards: Counter;
  readonly agentRewardSum: UpDownCounter;
  readonly loadedVersion: Gauge;
}

let cache: { provider: MeterProvider; instruments: Instruments } | undefined;

/** Seconds; from 1 ms to 2 min. */
const DURATION_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

function instruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (cache?.provider === provider) return cache.instruments;
  const meter = provider.getMeter('@purify/runtime', VERSION);
  const made: Instruments = {
    meter,
    rpcRequests: meter.createCounter(MetricName.RpcRequests, { description: 'RPCs served, by method and status code' }),
    rpcDuration: meter.createHistogram(MetricName.RpcDuration, {
      description: 'Time from receiving an RPC to its status, by method and status code',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
    }),
    inferenceVoxels: meter.createCounter(MetricName.InferenceVoxels, { description: 'Voxels segmented' }),
    inferenceThroughput: meter.createHistogram(MetricName.InferenceThroughput, {
      description: 'Voxels segmented per second of one inference pass',
      unit: '{voxel}/s',
      advice: { explicitBucketBoundaries: [1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8] },
    }),
    trainingStep: meter.createHistogram(MetricName.TrainingStepDuration, {
      description: 'Wall time of one optimiser step',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
    }),
    queueDepth: meter.createGauge(MetricName.QueueDepth, { description: 'Items waiting in a queue (jobs, decisions, batches)' }),
    // Rewards can be negative, which OpenTelemetry histograms drop: a count and a
    // signed sum instead (mean reward = increase(sum) / increase(count)).
    agentRewards: meter.createCounter(MetricName.AgentRewards, { description: 'Rewards received by the agent, by policy version' }),
    agentRewardSum: meter.createUpDownCounter(MetricName.AgentRewardSum, { description: 'Sum of the rewards received by the agent, by policy version' }),
    loadedVersion: meter.createGauge(MetricName.LoadedVersion, { description: 'Version of each model or policy currently loaded (served)' }),
  };
  cache = { provider, instruments: made };
  return made;
}

/** Records one finished RPC (called by the handler wrappers). */
export function recordRpc(service: string, method: string, grpcStatusCode: number, statusName: string, seconds: number): void {
  const attributes = {
    'rpc.system': 'grpc',
    'rpc.service': service,
    'rpc.method': method,
    'rpc.grpc.status_code': grpcStatusCode,
    'rpc.grpc.status': statusName,
  };
  const i = instruments();
  i.rpcRequests.add(1, attributes);
  i.rpcDuration.record(seconds, attributes);
}

function versionLabels(prefix: 'model' | 'policy', ref: VersionRef | undefined): Record<string, string | number> {
  return ref ? { [`purify.${prefix}.name`]: ref.name, [`purify.${prefix}.version`]: ref.version } : {};
}

/** Service-specific metrics (see the table above for names and labels). */
export const serviceMetrics = {
  /** One inference pass over `voxels` voxels that took `seconds` s: counts the voxels and records voxels/s. */
  inference(voxels: number, seconds: number, model?: VersionRef): void {
    const i = instruments();
    const labels = versionLabels('model', model);
    i.inferenceVoxels.add(voxels, labels);
    if (seconds > 0) i.inferenceThroughput.record(voxels / seconds, labels);
  },

  /** One optimiser step of `seconds` s. */
  trainingStep(seconds: number, model?: Pick<VersionRef, 'name'>): void {
    instruments().trainingStep.record(seconds, model ? { 'purify.model.name': model.name } : {});
  },

  /** Current length of the queue named `queue` (e.g. `jobs`, `decisions`). */
  queueDepth(queue: string, depth: number): void {
    instruments().queueDepth.record(depth, { 'purify.queue': queue });
  },

  /** One reward the agent received for a decision of `policy`. */
  agentReward(reward: number, policy: VersionRef): void {
    const i = instruments();
    const labels = versionLabels('policy', policy);
    i.agentRewards.add(1, labels);
    i.agentRewardSum.add(reward, labels);
  },

  /** The version of model/policy `name` now loaded (served). */
  loadedVersion(kind: 'model' | 'policy', name: string, version: number): void {
    instruments().loadedVersion.record(version, { 'purify.kind': kind, 'purify.name': name });
  },

  /** The runtime's meter, for instruments not covered above (look it up on use, not at start). */
  meter(): Meter {
    return instruments().meter;
  },
};
