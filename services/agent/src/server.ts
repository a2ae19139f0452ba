import { AgentServiceService, type AgentServiceServer, type FeatureMatrix } from '@purify/proto';
import { notYetImplemented, opt, runService, serverSchema, unary, validate, type DomainHandlers, type ServiceDefinitionSpec } from '@purify/runtime';

const ISSUE = 'issue #6 (agent service)';

const schema = {
  ...serverSchema('agent'),
  artifactsDir: opt.directory('Artifact store root; policies, experiments and buffers live in <dir>/agent', 'artifacts', 'write'),
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

export const agentService: ServiceDefinitionSpec<typeof schema> = {
  kind: 'agent',
  schema,
  build: async () => ({
    definition: AgentServiceService,
    implementation: (env): DomainHandlers<AgentServiceServer> => {
      const later = (method: string) =>
        unary(env, method, () => {
          throw notYetImplemented('AgentService', method, ISSUE);
        });
      return {
        act: unary(env, 'Act', (req) => {
          if (req.target === undefined) throw validate.invalid('target', 'must name a `policy` or an `experiment`', undefined);
          checkObservations(req.observations, 'observations');
          throw notYetImplemented('AgentService', 'Act', ISSUE);
        }),
        feedback: unary(env, 'Feedback', (req) => {
          req.rewards.forEach((r, i) => {
            validate.nonEmptyString(r.decisionId, `rewards[${i}].decision_id`);
            validate.finiteNumber(r.reward, `rewards[${i}].reward`);
          });
          throw notYetImplemented('AgentService', 'Feedback', ISSUE);
        }),
        update: later('Update'),
        registerPolicy: later('RegisterPolicy'),
        listPolicies: later('ListPolicies'),
        getPolicy: later('GetPolicy'),
        promotePolicy: later('PromotePolicy'),
        archivePolicy: later('ArchivePolicy'),
        getPolicyMetrics: later('GetPolicyMetrics'),
        createExperiment: later('CreateExperiment'),
        updateExperiment: later('UpdateExperiment'),
        getExperiment: later('GetExperiment'),
        listExperiments: later('ListExperiments'),
      };
    },
  }),
};

export function main(argv: readonly string[]): void {
  runService(agentService, argv);
}
