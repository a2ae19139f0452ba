// The agent's own metrics on its Prometheus endpoint (--metrics-port), after
// real calls over gRPC: rewards (count and signed sum) by the policy version
// that decided, and the promoted version of each policy name.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActionSpace, AgentServiceClient, type ActRequest, type PolicySpec } from '@purify/proto';
import { createClient, freeLoopbackPort, scrape, scrapeText, startInProcess, unaryCall, valuesOf, type RunningServer } from '@purify/runtime';
import { agentService } from '../src';

const SPEC: PolicySpec = {
  actionSpace: ActionSpace.ACTION_SPACE_DISCRETE,
  weightLevels: [0, 0.5, 1],
  hiddenUnits: [8],
  featureSchemaVersion: 'v1',
  numFeatures: 3,
  seed: 4,
};
/** Must never reach a metric label. */
const ROUTING_KEY = 'case-DOE-19610417';

let artifacts: string;
let server: RunningServer;
let client: AgentServiceClient;

const register = (c: AgentServiceClient, name: string) => unaryCall(c, 'registerPolicy', { name, spec: SPEC, provenance: {}, weights: Buffer.alloc(0) });

beforeAll(async () => {
  artifacts = mkdtempSync(join(tmpdir(), 'agent-metrics-'));
  // A first agent (no metrics) leaves "pre" with versions 1 (promoted) and 2 (promoted next) in the store.
  const first = await startInProcess(agentService, ['--port', '0', '--artifacts-dir', artifacts]);
  const c = createClient(AgentServiceClient, 'agent', { addresses: [first.address], defaultTimeoutMs: 20_000 });
  try {
    await register(c, 'pre');
    await register(c, 'pre');
    await unaryCall(c, 'promotePolicy', { ref: { name: 'pre', version: 2 } });
  } finally {
    c.close();
    await first.shutdown();
  }
  server = await startInProcess(agentService, ['--port', '0', '--metrics-port', String(await freeLoopbackPort()), '--artifacts-dir', artifacts]);
  client = createClient(AgentServiceClient, 'agent', { addresses: [server.address], defaultTimeoutMs: 20_000 });
});
afterAll(async () => {
  client?.close();
  await server?.shutdown();
  rmSync(artifacts, { recursive: true, force: true });
});

/** Decision ids of one Act on `p:version` with `rows` rows. */
async function decide(version: number, rows: number): Promise<string[]> {
  const request: ActRequest = {
    target: { $case: 'policy', policy: { name: 'p', version } },
    routingKey: ROUTING_KEY,
    observations: { schemaVersion: 'v1', numRows: rows, numFeatures: 3, values: Array.from({ length: rows * 3 }, (_, i) => (i % 4) / 4) },
    deterministic: false,
    context: {},
  };
  return (await unaryCall(client, 'act', request)).decisions.map((d) => d.decisionId);
}

const loaded = async (name: string): Promise<number[]> => valuesOf(await scrape(server.metricsAddress as string), 'purify_loaded_version', { purify_kind: 'policy', purify_name: name });
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

describe('agent metrics', () => {
  it('reports the promoted version of each policy already in the store when it starts', async () => {
    expect(await loaded('pre')).toEqual([2]);
  });

  it('counts rewards and sums them by the policy version that decided; reports promotions', async () => {
    await register(client, 'p'); // p:1, promoted (first version)
    expect(await loaded('p')).toEqual([1]);
    await register(client, 'p'); // p:2, a candidate
    // [version, rewards] — one reward per decision; the two versions' rewards interleave across two Feedback calls.
    const rewards: [number, number[]][] = [
      [1, [0.5, -0.25, 1]],
      [2, [2, -1]],
    ];
    const decided = await Promise.all(rewards.map(([version, r]) => decide(version, r.length)));
    const feedback = rewards.flatMap(([, r], k) => r.map((reward, i) => ({ decisionId: decided[k]?.[i] as string, reward, done: i === r.length - 1 })));
    await unaryCall(client, 'feedback', { rewards: feedback.filter((_, i) => i % 2 === 0) });
    await unaryCall(client, 'feedback', { rewards: feedback.filter((_, i) => i % 2 === 1) });
    // Refused as a whole: counts nothing.
    await expect(unaryCall(client, 'feedback', { rewards: [{ decisionId: 'main~nope', reward: 100, done: false }] })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await unaryCall(client, 'promotePolicy', { ref: { name: 'p', version: 2 } });

    const all = await scrape(server.metricsAddress as string);
    for (const [version, r] of rewards) {
      const labels = { purify_policy_name: 'p', purify_policy_version: String(version) };
      expect([version, valuesOf(all, 'purify_agent_rewards_total', labels), valuesOf(all, 'purify_agent_reward_sum', labels)]).toEqual([version, [r.length], [sum(r)]]);
    }
    expect(valuesOf(all, 'purify_agent_rewards_total')).toHaveLength(rewards.length);
    expect(valuesOf(all, 'purify_loaded_version', { purify_kind: 'policy', purify_name: 'p' })).toEqual([2]);
    // The routing key (a caller's case) and decision ids stay out of the labels.
    const text = await scrapeText(server.metricsAddress as string);
    expect([text.includes(ROUTING_KEY), text.includes('main~')]).toEqual([false, false]);
  });
});
