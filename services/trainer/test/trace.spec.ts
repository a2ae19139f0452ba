/**
 * One adaptation round, one trace across the four real services (issue #8):
 * trainer → segmenter, trainer → reliability → segmenter, trainer → agent.
 *
 * All four services run as processes (sources through tsx, as the launcher
 * starts them): the gRPC instrumentation must hook grpc-js when it is first
 * required, which jest's module registry bypasses, so not even the trainer can
 * run in this process. Each exports its spans by OTLP/HTTP (JSON), as the
 * standard OTEL_* variables choose, to a stand-in collector on loopback; they
 * flush on SIGTERM, and the test reads the spans once every process has exited.
 * The job: `rl`, 1 round of 1 step, batch 2, 16 × 16 tiles, no starting model.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NUM_FEATURES } from '@purify/adaptation';
import { ActionSpace, AgentServiceClient, JobSpec, JobState, Method, TrainerServiceClient, type Job } from '@purify/proto';
import { createClient, unaryCall } from '@purify/runtime';
import { watch, writeData } from './fixtures';

const ROOT = resolve(__dirname, '../../..');
type Kind = 'segmenter' | 'reliability' | 'agent' | 'trainer';

// OTLP SpanKind values (the JSON encoding: 1-based, unlike the API's enum).
const INTERNAL = 1;
const SERVER = 2;
const CLIENT = 3;

interface Span {
  service: string;
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  attributes: Record<string, string | number>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpPayload {
  resourceSpans: {
    resource: { attributes: { key: string; value: OtlpValue }[] };
    scopeSpans: { spans: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: { key: string; value: OtlpValue }[] }[] }[];
  }[];
}

const valueOf = (v: OtlpValue): string | number => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.doubleValue ?? String(v.boolValue)));

/** A stand-in OTLP/HTTP collector on loopback: keeps every exported span. */
const spans: Span[] = [];
const collector: Server = createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (body += chunk));
  req.on('end', () => {
    const payload = JSON.parse(body) as OtlpPayload;
    for (const rs of payload.resourceSpans) {
      const service = String(rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue);
      for (const s of rs.scopeSpans.flatMap((ss) => ss.spans)) {
        spans.push({
          service,
          name: s.name,
          kind: s.kind,
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId || undefined,
          attributes: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, valueOf(a.value)])),
        });
      }
    }
    res.setHeader('content-type', 'application/json');
    res.end('{}');
  });
});

const children = new Map<Kind, ChildProcess>();
const exited = new Map<Kind, Promise<void>>();
let otelEnv: NodeJS.ProcessEnv;

function startService(kind: Kind, args: string[]): Promise<string> {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const child = spawn(process.execPath, [`--import=${tsx}`, '--conditions=@purify/source', join(ROOT, 'services', kind, 'src', 'main.ts'), '--port', '0', '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: otelEnv,
  });
  children.set(kind, child);
  exited.set(kind, new Promise((res) => child.once('exit', () => res())));
  return new Promise((res, rej) => {
    child.once('message', (m: { type?: string; address?: string }) => (m.type === 'purify.ready' && m.address ? res(m.address) : rej(new Error(`${kind}: unexpected message ${JSON.stringify(m)}`))));
    child.once('exit', (code) => rej(new Error(`${kind} exited with ${code} before it was ready`)));
  });
}

/** SIGTERM to every service still running; resolves once all have exited (their spans flushed on the way out). */
async function stopAll(): Promise<void> {
  for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await Promise.all(exited.values());
}

let data: string;
let artifacts: string;
let job: Job;
let trace: Span[];

beforeAll(async () => {
  data = writeData();
  artifacts = mkdtempSync(join(tmpdir(), 'trainer-trace-'));
  await new Promise<void>((res) => collector.listen(0, '127.0.0.1', res));
  otelEnv = {
    // The caller's OTEL_* cleared: only what the test sets applies.
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_'))),
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
  };
  let client: TrainerServiceClient | undefined;
  try {
    const [segmenter, agent] = await Promise.all([startService('segmenter', ['--artifacts-dir', artifacts]), startService('agent', ['--artifacts-dir', artifacts])]);
    // A store from before feature schema v2 holds the old default policy, which cannot read v2 rows: the job must not pick it.
    const agentClient = createClient(AgentServiceClient, 'agent', { addresses: [agent], defaultTimeoutMs: 60_000 });
    try {
      await unaryCall(agentClient, 'registerPolicy', {
        name: 'purify-weights',
        spec: { actionSpace: ActionSpace.ACTION_SPACE_DISCRETE, weightLevels: [0, 1], hiddenUnits: [8], featureSchemaVersion: 'v1', numFeatures: NUM_FEATURES, seed: 1 },
        provenance: { registeredBy: 'test', reason: 'the default policy of an older store' },
        weights: Buffer.alloc(0),
      });
    } finally {
      agentClient.close();
    }
    const reliability = await startService('reliability', ['--segmenter-addresses', segmenter]);
    const trainer = await startService('trainer', [
      '--artifacts-dir', artifacts, '--inference', 'remote', '--call-attempts', '2', '--call-backoff-ms', '100', '--call-timeout-ms', '60000',
      '--segmenter-addresses', segmenter, '--reliability-addresses', reliability, '--agent-addresses', agent,
    ]);
    client = createClient(TrainerServiceClient, 'trainer', { addresses: [trainer], defaultTimeoutMs: 60_000 });
    const spec = JobSpec.fromPartial({
      jobId: 'trace-rl',
      method: Method.METHOD_RL,
      source: { path: join(data, 'ct'), modality: 1, caseIds: [] },
      target: { path: join(data, 'mr'), modality: 2, caseIds: [] },
      hyperparameters: { rounds: 1, stepsPerRound: 1, batchSize: 2, imageSizeYx: [16, 16] },
      seed: 5,
    });
    await unaryCall(client, 'startJob', { spec });
    await watch(client, 'trace-rl');
    job = await unaryCall(client, 'getJob', { jobId: 'trace-rl' });
  } finally {
    client?.close();
    await stopAll();
  }
  const root = spans.find((s) => s.name === 'trainer.round');
  trace = spans.filter((s) => s.traceId === root?.traceId);
}, 180_000);

afterAll(async () => {
  await stopAll();
  await new Promise<void>((res) => collector.close(() => res()));
  rmSync(data, { recursive: true, force: true });
  rmSync(artifacts, { recursive: true, force: true });
});

describe('one adaptation round, one trace across the four services', () => {
  it('runs the rl job to completion with the default policy of the current feature schema', () => {
    expect(job.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    expect(job.policy?.name).toBe('purify-weights-v2');
  });

  it('roots the round at one trainer.round span whose trace holds every service’s server spans', () => {
    // One round → one round span; it starts its own trace (no parent).
    const rounds = spans.filter((s) => s.name === 'trainer.round');
    expect(rounds.map((s) => [s.service, s.kind, s.parentSpanId])).toEqual([['purify-trainer', INTERNAL, undefined]]);
    expect(trace.filter((s) => s.parentSpanId === undefined).map((s) => s.name)).toEqual(['trainer.round']);
    // Every other span of the trace hangs off a span of the same trace (nothing lost on the way).
    const ids = new Set(trace.map((s) => s.spanId));
    expect(trace.filter((s) => s.parentSpanId !== undefined && !ids.has(s.parentSpanId))).toEqual([]);
    const servers = new Set(trace.filter((s) => s.kind === SERVER).map((s) => `${s.service} ${s.name.split('/')[0]}`));
    expect([...servers].sort()).toEqual([
      'purify-agent grpc.purify.v1.AgentService',
      'purify-reliability grpc.purify.v1.ReliabilityService',
      'purify-segmenter grpc.purify.v1.SegmenterService',
    ]);
    // The StartJob call (the test's client is not traced) is a trace of its own, not the round's.
    expect(trace.some((s) => s.name.includes('TrainerService'))).toBe(false);
  });

  it('links each server span to the client span that called it, across processes', () => {
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    const parentOf = (s: Span): Span | undefined => (s.parentSpanId === undefined ? undefined : byId.get(s.parentSpanId));
    const path = (s: Span): string[] => {
      const out: string[] = [];
      for (let x: Span | undefined = s; x !== undefined; x = parentOf(x)) out.unshift(`${x.service.replace('purify-', '')}:${x.name.replace('grpc.purify.v1.', '')}`);
      return out;
    };
    for (const server of trace.filter((s) => s.kind === SERVER)) {
      const client = parentOf(server);
      expect([client?.kind, client?.name, client?.service === server.service]).toEqual([CLIENT, server.name, false]);
    }
    // trainer → segmenter: the round teacher loaded by the segmenter.
    expect(trace.filter((s) => s.kind === SERVER && s.name.endsWith('/LoadModel') && s.service === 'purify-segmenter').map(path)).toContainEqual([
      'trainer:trainer.round', 'trainer:trainer.publish_teacher', 'trainer:SegmenterService/LoadModel', 'segmenter:SegmenterService/LoadModel',
    ]);
    // trainer → reliability → segmenter: a segmenter server span under the reliability service's client span.
    const viaReliability = trace.filter((s) => s.kind === SERVER && s.service === 'purify-segmenter' && parentOf(s)?.service === 'purify-reliability').map(path);
    expect(viaReliability.length).toBeGreaterThan(0);
    for (const p of viaReliability) {
      expect(p.slice(0, 4)).toEqual(['trainer:trainer.round', 'trainer:trainer.score', 'trainer:ReliabilityService/Score', 'reliability:ReliabilityService/Score']);
      expect(p[p.length - 1]).toMatch(/^segmenter:SegmenterService\//);
      expect(p[p.length - 2]).toBe(`reliability:${p[p.length - 1]!.slice('segmenter:'.length)}`);
    }
    // trainer → agent: Act under trainer.act.
    expect(trace.filter((s) => s.kind === SERVER && s.name.endsWith('/Act')).map(path)).toContainEqual(['trainer:trainer.round', 'trainer:trainer.act', 'trainer:AgentService/Act', 'agent:AgentService/Act']);
  });

  it('carries versions and counts as attributes: round, batch size, teacher model, policy, voxels, regions', () => {
    const root = trace.find((s) => s.name === 'trainer.round')!;
    // The first teacher of a fresh registry is version 1; the job names it `<job id>.teacher`.
    expect(root.attributes).toEqual({
      'purify.round': 1,
      'purify.batch.size': 2,
      'purify.model.name': 'trace-rl.teacher',
      'purify.model.version': 1,
      'purify.policy.name': job.policy!.name,
      'purify.policy.version': job.policy!.version,
    });
    const publish = trace.filter((s) => s.name === 'trainer.publish_teacher');
    expect(publish.map((s) => s.attributes)).toEqual([{ 'purify.round': 1, 'purify.model.name': 'trace-rl.teacher', 'purify.model.version': 1 }]);
    const scores = trace.filter((s) => s.name === 'trainer.score');
    expect(scores.length).toBeGreaterThan(0);
    for (const s of scores) {
      // Every volume scored (target volumes and simulated shifts of source ones) is the fixtures' 2 slices × 16 × 16 voxels.
      expect(s.attributes).toMatchObject({ 'purify.model.version': 1, 'purify.round': 1, 'purify.voxel.count': 2 * 16 * 16 });
      expect(s.attributes['purify.region.count']).toBeGreaterThan(0);
    }
    const acts = trace.filter((s) => s.name === 'trainer.act');
    expect(acts.length).toBeGreaterThan(0);
    for (const s of acts) expect(s.attributes).toMatchObject({ 'purify.policy.name': 'purify-weights-v2' });
  });

  it('the services’ own server spans carry what they served: model, voxels, patches, regions, policy', () => {
    const served = (service: string, method: string): Span[] => trace.filter((s) => s.kind === SERVER && s.service === `purify-${service}` && s.name.endsWith(`/${method}`));
    const teacher = { 'purify.model.name': 'trace-rl.teacher', 'purify.model.version': 1 };
    for (const method of ['LoadModel', 'Segment', 'PredictPatches']) expect(served('segmenter', method).length).toBeGreaterThan(0);
    for (const s of served('segmenter', 'LoadModel')) expect(s.attributes).toMatchObject(teacher);
    for (const s of served('segmenter', 'Segment')) {
      expect(s.attributes).toMatchObject({ ...teacher, 'purify.voxel.count': 2 * 16 * 16 });
      expect(s.attributes['purify.batch.size']).toBeGreaterThan(0);
    }
    for (const s of served('segmenter', 'PredictPatches')) {
      expect(s.attributes).toMatchObject(teacher);
      expect(s.attributes['purify.patch.count']).toBeGreaterThan(0);
    }
    const scores = served('reliability', 'Score');
    expect(scores.length).toBeGreaterThan(0);
    for (const s of scores) {
      expect(s.attributes).toMatchObject({ ...teacher, 'purify.voxel.count': 2 * 16 * 16 });
      expect(s.attributes['purify.region.count']).toBeGreaterThan(0);
      expect(typeof s.attributes['purify.round']).toBe('number');
    }
    const acts = served('agent', 'Act');
    expect(acts.length).toBeGreaterThan(0);
    for (const s of acts) {
      expect(s.attributes).toMatchObject({ 'purify.policy.name': 'purify-weights-v2' });
      expect(s.attributes['purify.policy.version']).toBeGreaterThanOrEqual(1);
      expect(s.attributes['purify.region.count']).toBeGreaterThan(0);
    }
    const updates = served('agent', 'Update');
    expect(updates.length).toBeGreaterThan(0);
    for (const s of updates) expect(s.attributes).toMatchObject({ 'purify.policy.name': 'purify-weights-v2' });
  });
});
