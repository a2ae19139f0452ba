// Metrics over real gRPC: a runtime server with --metrics-port serves Prometheus
// text on loopback; the test scrapes it with a plain HTTP GET after a few calls.
import { get } from 'node:http';
import { AgentServiceClient, AgentServiceService, type ActRequest, type ActResponse } from '@purify/proto';
import { activeMetrics, metricExportersFromEnv } from '@purify/telemetry';
import { Logger, LogLevel, PurifyError, createClient, freeLoopbackPort, parseSamples, serviceMetrics, startServer, unary, unaryCall, valuesOf, type RunningServer } from '../src';


function scrape(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // A fresh connection per scrape (no keep-alive), like Prometheus after a restart.
    get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

let server: RunningServer | undefined;
afterAll(async () => {
  await server?.shutdown();
});

describe('Prometheus endpoint', () => {
  it('counts RPCs by method and status code and records their latency', async () => {
    const port = await freeLoopbackPort();
    server = await startServer({
      kind: 'agent',
      settings: { host: '127.0.0.1', port: 0, maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 20, shutdownGraceMs: 500, metricsPort: port },
      logger: new Logger(LogLevel.Silent),
      definition: AgentServiceService,
      implementation: (env) => ({
        act: unary<ActRequest, ActResponse>(env, 'Act', (req) => {
          if (req.routingKey === 'bad') throw PurifyError.invalidArgument('`routing_key` is bad');
          return { decisions: [], experiment: '', arm: '' };
        }),
      }),
    });
    expect(server.metricsAddress).toBe(`127.0.0.1:${port}`);
    const client = createClient(AgentServiceClient, 'agent', { addresses: [server.address], maxAttempts: 1 });
    const request = (routingKey: string): ActRequest => ({ target: { $case: 'experiment', experiment: 'e' }, routingKey, context: {}, deterministic: false });
    // 3 successful Act, 2 refused Act, 1 GetInfo.
    for (const key of ['a', 'b', 'c']) await unaryCall(client, 'act', request(key));
    for (let i = 0; i < 2; i++) await expect(unaryCall(client, 'act', request('bad'))).rejects.toThrow(PurifyError);
    await unaryCall(client, 'getInfo', {});
    client.close();

    // Service-specific metrics, with values computed by hand below.
    serviceMetrics.inference(1_000_000, 0.5, { name: 'unet', version: 3 }); // 2e6 voxels/s
    serviceMetrics.inference(500_000, 0.5, { name: 'unet', version: 3 }); // 1e6 voxels/s
    serviceMetrics.trainingStep(0.75, { name: 'unet' });
    serviceMetrics.queueDepth('jobs', 4);
    serviceMetrics.queueDepth('jobs', 2);
    serviceMetrics.agentReward(0.5, { name: 'ppo', version: 2 });
    serviceMetrics.agentReward(-0.25, { name: 'ppo', version: 2 });
    serviceMetrics.loadedVersion('model', 'unet', 3);

    const res = await scrape(`http://${server.metricsAddress}/metrics`);
    expect(res.status).toBe(200);
    const all = parseSamples(res.body);
    const act = { rpc_service: 'purify.v1.AgentService', rpc_method: 'Act' };
    // [metric, labels, expected values]
    const expectations: [string, Record<string, string>, number[]][] = [
      ['purify_rpc_server_requests_total', { ...act, rpc_grpc_status: 'OK', rpc_grpc_status_code: '0' }, [3]],
      ['purify_rpc_server_requests_total', { ...act, rpc_grpc_status: 'INVALID_ARGUMENT', rpc_grpc_status_code: '3' }, [2]],
      ['purify_rpc_server_requests_total', { rpc_method: 'GetInfo', rpc_grpc_status: 'OK' }, [1]],
      ['rpc_server_call_duration_count', { ...act, rpc_grpc_status: 'OK' }, [3]],
      // Every call takes less than 2 minutes, the top finite bucket: all 3 are in it.
      ['rpc_server_call_duration_bucket', { ...act, rpc_grpc_status: 'OK', le: '120' }, [3]],
      ['rpc_server_call_duration_bucket', { ...act, rpc_grpc_status: 'OK', le: '+Inf' }, [3]],
      ['purify_inference_voxels_total', { purify_model_name: 'unet', purify_model_version: '3' }, [1_500_000]],
      ['purify_inference_throughput_count', { purify_model_name: 'unet' }, [2]],
      ['purify_inference_throughput_sum', { purify_model_name: 'unet' }, [3_000_000]],
      // 1e6 falls in the le=1e6 bucket (upper bounds are inclusive), 2e6 does not.
      ['purify_inference_throughput_bucket', { purify_model_name: 'unet', le: '1000000' }, [1]],
      ['purify_training_step_duration_sum', { purify_model_name: 'unet' }, [0.75]],
      ['purify_queue_depth', { purify_queue: 'jobs' }, [2]],
      // 0.5 + (-0.25) = 0.25 over 2 rewards.
      ['purify_agent_reward_sum', { purify_policy_name: 'ppo', purify_policy_version: '2' }, [0.25]],
      ['purify_agent_rewards_total', { purify_policy_name: 'ppo', purify_policy_version: '2' }, [2]],
      ['purify_loaded_version', { purify_kind: 'model', purify_name: 'unet' }, [3]],
    ];
    for (const [name, labels, expected] of expectations) {
      expect([name, labels, valuesOf(all, name, labels)]).toEqual([name, labels, expected]);
    }
    // Health checks and reflection are not counted.
    expect(all.filter((s) => s.labels['rpc_service'] === 'grpc.health.v1.Health')).toEqual([]);
    expect((await scrape(`http://${server.metricsAddress}/other`)).status).toBe(404);
  });

  it('stops the endpoint with the server', async () => {
    const address = server?.metricsAddress as string;
    await server?.shutdown();
    server = undefined;
    expect(activeMetrics()).toBeUndefined();
    await expect(scrape(`http://${address}/metrics`)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('metricExportersFromEnv', () => {
  it.each([
    // [env, expected readers]
    [{}, []],
    [{ OTEL_METRICS_EXPORTER: 'none' }, []],
    [{ OTEL_METRICS_EXPORTER: 'otlp' }, ['otlp']],
    [{ OTEL_METRICS_EXPORTER: ' otlp , console,otlp' }, ['otlp', 'console']],
    [{ OTEL_METRICS_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }, []],
  ])('%p → %p', (env, expected) => {
    expect(metricExportersFromEnv(env)).toEqual(expected);
  });

  it('names the variable and value of an unknown exporter', () => {
    expect(() => metricExportersFromEnv({ OTEL_METRICS_EXPORTER: 'prometheus' })).toThrow(
      new Error('OTEL_METRICS_EXPORTER must be a comma-separated list of otlp, console, none (the Prometheus endpoint is the --metrics-port setting), got "prometheus"'),
    );
  });
});
