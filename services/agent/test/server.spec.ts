import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentServiceClient, type ActRequest } from '@purify/proto';
import { createClient, listServices, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import { agentService } from '../src';

let server: RunningServer;
let client: AgentServiceClient;

beforeAll(async () => {
  server = await startInProcess(agentService, ['--port', '0', '--artifacts-dir', mkdtempSync(join(tmpdir(), 'agent-'))]);
  client = createClient(AgentServiceClient, 'agent', { addresses: [server.address], defaultTimeoutMs: 5000 });
});
afterAll(async () => {
  client.close();
  await server.shutdown();
});

const act = (override: Partial<ActRequest>): ActRequest => ({
  target: { $case: 'policy', policy: { name: 'p', version: 0 } },
  routingKey: 'job-1',
  observations: { schemaVersion: 'v1', numRows: 2, numFeatures: 3, values: [0, 0.5, 1, 0.2, 0.1, 0] },
  deterministic: false,
  context: {},
  ...override,
});

describe('agent service', () => {
  it('lists its service through reflection', async () => {
    expect(await listServices(server.address)).toContain('purify.v1.AgentService');
  });

  it.each([
    // [case, request, code, exact message]
    ['no target', act({ target: undefined }), 'INVALID_ARGUMENT', 'act failed: `target` must name a `policy` or an `experiment`, got nothing'],
    ['width mismatch: 2 rows x 3 features but 5 values', act({ observations: { schemaVersion: 'v1', numRows: 2, numFeatures: 3, values: [1, 2, 3, 4, 5] } }), 'INVALID_ARGUMENT', 'act failed: `observations.values` must hold num_rows * num_features = 6 values, got 5'],
    ['NaN feature at row 1, column 2', act({ observations: { schemaVersion: 'v1', numRows: 2, numFeatures: 3, values: [0, 0, 0, 0, 0, Number.NaN] } }), 'INVALID_ARGUMENT', 'act failed: `observations.values[5]` must be finite (row 1, feature 2), got "NaN"'],
    ['well-formed', act({}), 'UNIMPLEMENTED', 'act failed: AgentService.Act is not implemented yet; it arrives with issue #6 (agent service)'],
  ])('Act: %s', async (_name, request, code, message) => {
    await expect(unaryCall(client, 'act', request)).rejects.toMatchObject({ code, message });
  });

  it('Feedback refuses an infinite reward naming the entry', async () => {
    await expect(unaryCall(client, 'feedback', { rewards: [{ decisionId: 'd1', reward: 1, done: false }, { decisionId: 'd2', reward: Infinity, done: true }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'feedback failed: `rewards[1].reward` must be a finite number in [-Infinity, Infinity], got Infinity',
    });
  });
});
