// Child process of tracing.spec.ts (run through tsx, like `npm start` runs the
// services): registers OpenTelemetry with an in-memory exporter BEFORE grpc-js
// loads — exactly as every service main.ts does — then runs a chain of three
// real gRPC servers built with the runtime, A → B → C, and prints one JSON
// object: the finished spans, every log line, and the ids each handler saw.
//
// argv[2] = the scenario: `chain` (one call through the chain), `otlp` (the
// same, exported as OTEL_* configures instead of kept in memory) or `patient`
// (requests carrying a fake patient name — argv[3] — in routing_key and the
// context map, one succeeding and one failing in C; A also serves Prometheus
// metrics, whose text is printed too).
import { get } from 'node:http';
import { initTelemetry } from '@purify/telemetry';

const scenario = process.argv[2] ?? 'chain';
const telemetry = initTelemetry('trace-harness', { inMemory: scenario !== 'otlp' });

// Only now may anything load @grpc/grpc-js.
const proto = require('@purify/proto') as typeof import('@purify/proto');
const runtime = require('../src') as typeof import('../src');

type ActRequest = import('@purify/proto').ActRequest;
type ActResponse = import('@purify/proto').ActResponse;

const PATIENT = process.argv[3] ?? 'DOE^JANE';
const logs: string[] = [];
const logger = new runtime.Logger(runtime.LogLevel.Debug, { harness: true }, (line) => logs.push(line));
const seen: Record<string, { traceId: string; spanId: string } | undefined> = {};

const settings = { host: '127.0.0.1', port: 0, maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 20, shutdownGraceMs: 1000 };
const empty: ActResponse = { decisions: [], experiment: '', arm: '' };

async function main(): Promise<void> {
  const servers: import('../src').RunningServer[] = [];
  const clients: import('@purify/proto').AgentServiceClient[] = [];
  const serve = async (name: string, act: (req: ActRequest, ctx: import('../src').CallContext) => Promise<ActResponse>, metricsPort = 0) => {
    const server = await runtime.startServer({
      kind: 'agent',
      settings: { ...settings, metricsPort },
      logger: logger.child({ server: name }),
      definition: proto.AgentServiceService,
      implementation: (env) => ({
        act: runtime.unary<ActRequest, ActResponse>(env, 'Act', async (req, ctx) => {
          seen[name] = runtime.traceIds(ctx);
          ctx.logger.info('handling', { server: name });
          return act(req, ctx);
        }),
      }),
    });
    servers.push(server);
    return server;
  };
  const clientOf = (address: string) => {
    const c = runtime.createClient(proto.AgentServiceClient, 'agent', { addresses: [address], defaultTimeoutMs: 5000, maxAttempts: 1 });
    clients.push(c);
    return c;
  };

  const c = await serve('C', async (req, ctx) => {
    runtime.addSpanAttributes({ [runtime.SpanAttr.ModelVersion]: 7, [runtime.SpanAttr.BatchSize]: 4 }, ctx);
    await runtime.withSpan('c.work', () => undefined, { parent: ctx, attributes: { [runtime.SpanAttr.VoxelCount]: 4096 } });
    if (req.deterministic) throw runtime.PurifyError.failedPrecondition('policy is not ready');
    return { ...empty, experiment: 'from C' };
  });
  const toC = clientOf(c.address);
  const b = await serve('B', async (req, ctx) => runtime.unaryCall(toC, 'act', req, { parent: ctx }));
  const toB = clientOf(b.address);
  const a = await serve('A', async (req, ctx) => runtime.unaryCall(toB, 'act', req, { parent: ctx }), scenario === 'patient' ? await runtime.freeLoopbackPort() : 0);
  const toA = clientOf(a.address);

  const results: string[] = [];
  const request = (deterministic: boolean): ActRequest =>
    scenario === 'patient'
      ? { target: { $case: 'experiment', experiment: 'e1' }, routingKey: PATIENT, context: { patientName: PATIENT, caseId: `${PATIENT}-1970` }, deterministic }
      : { target: { $case: 'experiment', experiment: 'e1' }, routingKey: 'case-001', context: {}, deterministic };
  const calls = scenario === 'patient' ? [false, true] : [false];
  await runtime.withSpan('harness.round', async () => {
    for (const deterministic of calls) {
      try {
        results.push((await runtime.unaryCall(toA, 'act', request(deterministic))).experiment);
      } catch (err) {
        results.push(`${(err as import('../src').PurifyError).code}: ${(err as Error).message}`);
      }
    }
  });

  const metricsText = a.metricsAddress ? await fetchText(`http://${a.metricsAddress}/metrics`) : '';
  clients.forEach((client) => client.close());
  for (const server of servers) await server.shutdown();
  await telemetry.flush();
  const spans = telemetry.finishedSpans().map((s) => ({
    name: s.name,
    kind: s.kind,
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId,
    attributes: s.attributes,
    status: s.status,
    events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
  }));
  process.stdout.write(`${JSON.stringify({ spans, logs, seen, results, metricsText, exporters: telemetry.traceExporters })}\n`);
  await telemetry.shutdown();
}


function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
