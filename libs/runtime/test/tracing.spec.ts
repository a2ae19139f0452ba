// Tracing end to end: test/trace-harness.ts runs in its own process (through
// tsx, as `npm start` runs the services) because the gRPC instrumentation must
// hook grpc-js when it is first required, which jest's module registry bypasses.
// The harness registers telemetry with an in-memory exporter, chains three real
// gRPC servers A → B → C built with the runtime, and prints spans and log lines.
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

interface SpanOut {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, unknown>;
  status: { code: number; message?: string };
  events: unknown[];
}
interface HarnessOut {
  spans: SpanOut[];
  logs: string[];
  seen: Record<'A' | 'B' | 'C', { traceId: string; spanId: string }>;
  results: string[];
  metricsText: string;
  exporters: string[];
}

// OpenTelemetry SpanKind values.
const INTERNAL = 0;
const SERVER = 1;
const CLIENT = 2;

function harness(args: string[], otelEnv: Record<string, string> = {}): Promise<HarnessOut> {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const script = join(__dirname, 'trace-harness.ts');
  // The caller's OTEL_* cleared: only what the test sets applies.
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_'))), ...otelEnv };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [`--import=${tsx}`, '--conditions=@purify/source', script, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`trace harness failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as HarnessOut);
    });
  });
}

/** A stand-in OTLP/HTTP collector on loopback: records every request. */
const received: { path: string; contentType: string; body: string }[] = [];
const collector: Server = createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (body += chunk));
  req.on('end', () => {
    received.push({ path: req.url ?? '', contentType: String(req.headers['content-type']), body });
    res.setHeader('content-type', 'application/json');
    res.end('{}');
  });
});

// The harness runs start together; each takes a few seconds (tsx start-up).
const PATIENT = 'DOE^JANE';
let chain: Promise<HarnessOut>;
let patient: Promise<HarnessOut>;
let exported: Promise<HarnessOut>;
beforeAll(async () => {
  chain = harness(['chain']);
  patient = harness(['patient', PATIENT]);
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  exported = harness(['otlp'], { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
  // Keep an early failure of one from surfacing as an unhandled rejection.
  for (const p of [chain, patient, exported]) p.catch(() => undefined);
});
afterAll(() => new Promise<void>((resolve) => collector.close(() => resolve())));

describe('one trace across three gRPC servers', () => {
  it('links root → A → B → C → C’s child span through client and server spans', async () => {
    const out = await chain;
    expect(out.exporters).toEqual(['memory']);
    expect(out.results).toEqual(['from C']);
    // Expected, by hand: the harness root span, then for each hop a CLIENT span and
    // the SERVER span under it (3 hops), then C's internal child: 1 + 6 + 1 = 8 spans.
    expect(out.spans).toHaveLength(8);
    expect(new Set(out.spans.map((s) => s.traceId)).size).toBe(1);

    const byId = new Map(out.spans.map((s) => [s.spanId, s]));
    const roots = out.spans.filter((s) => s.parentSpanId === undefined);
    expect(roots.map((s) => s.name)).toEqual(['harness.round']);
    // Walk down from the root: each span has exactly one child.
    const chainOfSpans: SpanOut[] = [roots[0] as SpanOut];
    for (;;) {
      const last = chainOfSpans[chainOfSpans.length - 1] as SpanOut;
      const children = out.spans.filter((s) => s.parentSpanId === last.spanId);
      if (children.length === 0) break;
      expect(children).toHaveLength(1);
      chainOfSpans.push(children[0] as SpanOut);
    }
    expect(chainOfSpans.map((s) => [s.kind, s.name])).toEqual([
      [INTERNAL, 'harness.round'],
      [CLIENT, 'grpc.purify.v1.AgentService/Act'],
      [SERVER, 'grpc.purify.v1.AgentService/Act'],
      [CLIENT, 'grpc.purify.v1.AgentService/Act'],
      [SERVER, 'grpc.purify.v1.AgentService/Act'],
      [CLIENT, 'grpc.purify.v1.AgentService/Act'],
      [SERVER, 'grpc.purify.v1.AgentService/Act'],
      [INTERNAL, 'c.work'],
    ]);
    // The server spans are the ones each handler saw as its call's span, in order A, B, C.
    expect([chainOfSpans[2]?.spanId, chainOfSpans[4]?.spanId, chainOfSpans[6]?.spanId]).toEqual([out.seen.A.spanId, out.seen.B.spanId, out.seen.C.spanId]);
    // Attributes set by C's handler land on its server span and its child.
    expect(byId.get(out.seen.C.spanId)?.attributes).toMatchObject({ 'purify.model.version': 7, 'purify.batch.size': 4, 'rpc.grpc.status_code': 0 });
    expect(chainOfSpans[7]?.attributes).toEqual({ 'purify.voxel.count': 4096 });
  });

  it('stamps every log line written inside a call with that call’s trace and span id', async () => {
    const out = await chain;
    const traceId = out.seen.A.traceId;
    const inCall = out.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'handling' || l['msg'] === 'rpc ok');
    // [server, msg] pairs expected: 'handling' and 'rpc ok' for each of A, B, C.
    expect(inCall.map((l) => `${String(l['server'])}:${String(l['msg'])}`).sort()).toEqual(['A:handling', 'A:rpc ok', 'B:handling', 'B:rpc ok', 'C:handling', 'C:rpc ok']);
    for (const line of inCall) {
      expect(line['traceId']).toBe(traceId);
      expect(line['spanId']).toBe(out.seen[line['server'] as 'A' | 'B' | 'C'].spanId);
    }
    // Outside any call (start-up, shutdown) there is no trace id.
    const outside = out.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'serving' || l['msg'] === 'stopped');
    expect(outside.length).toBe(6);
    expect(outside.every((l) => l['traceId'] === undefined)).toBe(true);
  });
});

describe('export chosen by OTEL_* variables', () => {
  it('sends the whole trace by OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT when OTEL_TRACES_EXPORTER=otlp', async () => {
    const out = await exported;
    expect(out.exporters).toEqual(['otlp']);
    expect(out.spans).toEqual([]);
    expect(received.length).toBeGreaterThan(0);
    expect(received.map((r) => [r.path, r.contentType])).toEqual(received.map(() => ['/v1/traces', 'application/json']));
    interface OtlpSpan { traceId: string; name: string }
    const payloads = received.map((r) => JSON.parse(r.body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] });
    const spans = payloads.flatMap((p) => p.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
    // The same 8 spans as the in-memory chain (see above), in one trace.
    expect(spans.map((s) => s.name).sort()).toEqual([...Array(6).fill('grpc.purify.v1.AgentService/Act'), 'c.work', 'harness.round'].sort());
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    const serviceNames = payloads.flatMap((p) => p.resourceSpans.map((rs) => rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue));
    expect(new Set(serviceNames)).toEqual(new Set(['purify-trace-harness']));
  });
});

describe('patient data', () => {
  it('never reaches a log line, span (name, attribute, status, event) or metric', async () => {
    const out = await patient;
    // The first request passes the chain, the second fails in C (FAILED_PRECONDITION).
    expect(out.results).toEqual(['from C', 'FAILED_PRECONDITION: act failed: act failed: act failed: policy is not ready']);
    expect(out.spans.length).toBe(15);
    expect(out.logs.length).toBeGreaterThan(10);
    expect(out.metricsText).toContain('purify_rpc_server_requests_total{');
    const everything = [...out.logs, ...out.spans.map((s) => JSON.stringify(s)), out.metricsText];
    // The name as sent, and its parts (no partial echo either).
    for (const needle of [PATIENT, 'DOE', 'JANE']) {
      expect(everything.filter((text) => text.includes(needle))).toEqual([]);
    }
  });
});
