/**
 * Scale-out of reliability over a scaled-out segmenter (issue #8): three REAL
 * segmenter processes (services never import each other; started as the
 * launcher starts them, same tiny U-Net from one registry, each with its own
 * Prometheus endpoint) and two reliability replicas (in-process, port 0), each
 * pointing at all three segmenters; a client balances Score calls round-robin
 * over the two reliability replicas.
 *
 * - A job of 40 Score calls spreads over every replica of both services: the
 *   split comes from the servers' own counters (segmenters: their
 *   `purify_rpc_server_requests_total`; reliability: `requestCounts()`).
 * - SIGKILL of one segmenter process mid-job loses no Score: the reliability
 *   replicas repeat the cut Segment / PredictPatches calls on the surviving
 *   segmenters within their deadline, and every Score equals the result of a
 *   reference reliability server that talks to one segmenter only. The victim
 *   is frozen first (SIGSTOP) and killed once over 1 KiB of requests wait
 *   unread on its connections (the kernel's receive queue, /proc/net/tcp):
 *   calls are certainly in flight when it dies.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BorderMode as ProtoBorderMode, ReliabilityServiceClient, type ReliabilityConfig, type ScoreResult, type ScoreSetup } from '@purify/proto';
import { createClient, freeLoopbackPort, startInProcess, startServiceProcess, unaryCall, type RunningServer } from '@purify/runtime';
import { reliabilityService } from '../src';
import { header, score } from './score-client';

const TSX = pathToFileURL(require.resolve('tsx')).href;
const NODE_FLAGS = [`--import=${TSX}`, '--conditions=@purify/source'];
const SEGMENTER_MAIN = join(__dirname, '../../segmenter/src/main.ts');
const SEGMENTERS = 3;
const JOB_SCORES = 40;
const CONCURRENCY = 4;

interface Segmenter {
  readonly child: ChildProcess;
  readonly address: string;
  readonly metricsUrl: string;
  readonly stop: () => Promise<void>;
}

let artifacts: string;
const segmenters: Segmenter[] = [];
const replicas: RunningServer[] = [];
let referenceServer: RunningServer;
let referenceClient: ReliabilityServiceClient;
let client: ReliabilityServiceClient;
let reference: ScoreResult[];
/** Segmenter calls the job makes, as counted by the one segmenter of the reference run. */
let referenceSegmenterCalls: number;


/** One segmenter process on port 0 with a Prometheus endpoint; resolves on its ready message. */
async function startSegmenterOnce(metricsPort: number): Promise<Segmenter> {
  const p = await startServiceProcess(SEGMENTER_MAIN, ['--port', '0', '--artifacts-dir', artifacts, '--log-level', 'warn', '--intra-op-threads', '1', '--inter-op-threads', '1', '--metrics-port', String(metricsPort)]);
  return { child: p.child, address: p.address, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, stop: p.stop };
}

/** Retries with another metrics port when the chosen one was taken in the meantime. */
async function startSegmenter(): Promise<Segmenter> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startSegmenterOnce(await freeLoopbackPort());
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** `purify_rpc_server_requests_total` of a segmenter process, by method and status. */
async function segmenterCounts(s: Segmenter): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  for (const line of (await scrape(s.metricsUrl)).split('\n')) {
    if (!line.startsWith('purify_rpc_server_requests_total{')) continue;
    const method = /rpc_method="([^"]+)"/.exec(line)?.[1];
    const status = /rpc_grpc_status="([^"]+)"/.exec(line)?.[1];
    if (method && status) (out[method] ??= {})[status] = Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

/** Bytes received but not yet read on the TCP connections a process accepted on `port` (Linux: /proc/net/tcp, rx_queue). */
function unreadBytes(port: number): number {
  let total = 0;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1];
    const queues = f[4];
    // State 01 = ESTABLISHED; local_address is HEXIP:HEXPORT, queues tx:rx in hex.
    if (!local || !queues || f[3] !== '01' || parseInt(local.split(':')[1] ?? '', 16) !== port) continue;
    total += parseInt(queues.split(':')[1] ?? '0', 16);
  }
  return total;
}

/** Resolves once `probe()` is true, checking every 10 ms; rejects after `timeoutMs`. */
async function until(what: string, timeoutMs: number, probe: () => boolean): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sum = (counts: Record<string, Record<string, number>>, ok: boolean): number =>
  Object.values(counts).reduce((n, byCode) => n + Object.entries(byCode).reduce((m, [code, k]) => m + ((code === 'OK') === ok ? k : 0), 0), 0);

function diff(now: Record<string, Record<string, number>>, before: Record<string, Record<string, number>>): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [method, byCode] of Object.entries(now)) {
    for (const [code, n] of Object.entries(byCode)) {
      const d = n - (before[method]?.[code] ?? 0);
      if (d > 0) (out[method] ??= {})[code] = d;
    }
  }
  return out;
}

const config = (seed: number): ReliabilityConfig => ({
  patchSize: 16,
  stride: 8,
  borderMode: ProtoBorderMode.BORDER_MODE_SHIFT,
  splitByClass: false,
  // Both extra views and 4 patches per call: each Score makes a dozen segmenter calls (LoadModel, 3 Segment, PredictPatches).
  flipView: true,
  appearanceView: true,
  seed,
  patchBatchSize: 4,
});

/** Score i: image i % 10 (a disc that moves with i, inside the model's window), appearance seed i. */
function job(i: number): { setup: ScoreSetup; voxels: Float32Array } {
  const k = i % 10;
  const voxels = new Float32Array(2 * 32 * 32);
  for (let s = 0; s < 2; s++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) voxels[s * 1024 + y * 32 + x] = ((x - 10 - k - 2 * s) ** 2 + (y - 12 - k / 2) ** 2 < 60 + 4 * k ? 60 : -80) + 4 * y;
  return { setup: { model: { name: 'tiny', version: 0 }, image: header([2, 32, 32]), config: config(i), maps: [], round: 0 }, voxels };
}

/** Runs the 40 Score calls, `CONCURRENCY` at a time; `onDone(n)` after each. Resolves with every result or error. */
async function runJob(c: ReliabilityServiceClient, onDone: (completed: number) => void = () => undefined): Promise<(ScoreResult | Error)[]> {
  const results: (ScoreResult | Error)[] = new Array(JOB_SCORES);
  let next = 0;
  let completed = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < JOB_SCORES; i = next++) {
      const { setup, voxels } = job(i);
      results[i] = await score(c, setup, voxels, 60_000).then(
        (o) => o.result,
        (err: unknown) => err as Error,
      );
      onDone(++completed);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return results;
}

/** What must be equal between a Score and its reference (timings differ). */
const essence = (r: ScoreResult) => ({ model: r.model, grid: r.grid, features: r.features, scores: r.scores, sliceScores: r.sliceScores });

function expectReference(results: (ScoreResult | Error)[]): void {
  expect(results.flatMap((r, i) => (r instanceof Error ? [`score ${i}: ${r.message}`] : []))).toEqual([]);
  results.forEach((r, i) => expect(essence(r as ScoreResult)).toEqual(essence(reference[i]!)));
}

beforeAll(async () => {
  artifacts = mkdtempSync(join(tmpdir(), 'reliability-scale-'));
  execFileSync(process.execPath, [...NODE_FLAGS, join(__dirname, 'fixtures/publish-unet.mjs'), artifacts, 'tiny'], { encoding: 'utf8' });
  segmenters.push(...(await Promise.all(Array.from({ length: SEGMENTERS }, () => startSegmenter()))));
  const all = segmenters.map((s) => s.address).join(',');
  for (let k = 0; k < 2; k++) replicas.push(await startInProcess(reliabilityService, ['--port', '0', '--segmenter-addresses', all, '--segmenter-timeout-ms', '60000']));
  // The reference: one reliability server, one segmenter.
  referenceServer = await startInProcess(reliabilityService, ['--port', '0', '--segmenter-addresses', segmenters[0]!.address]);
  referenceClient = createClient(ReliabilityServiceClient, 'reliability', { addresses: [referenceServer.address], defaultTimeoutMs: 60_000 });
  const seg0Before = await segmenterCounts(segmenters[0]!);
  reference = (await runJob(referenceClient)).map((r, i) => {
    if (r instanceof Error) throw new Error(`reference score ${i} failed: ${r.message}`);
    return r;
  });
  referenceSegmenterCalls = sum(diff(await segmenterCounts(segmenters[0]!), seg0Before), true);
  client = createClient(ReliabilityServiceClient, 'reliability', { addresses: replicas.map((r) => r.address), defaultTimeoutMs: 60_000 });
  // Warm-up: the client reaches both reliability replicas, and each replica every segmenter.
  const end = Date.now() + 30_000;
  while (!replicas.every((r) => (r.requestCounts()['GetInfo']?.['OK'] ?? 0) > 0)) {
    if (Date.now() > end) throw new Error('the reliability replicas did not both become reachable within 30 s');
    await unaryCall(client, 'getInfo', {});
  }
  for (;;) {
    const counts = await Promise.all(segmenters.map(segmenterCounts));
    if (counts.every((c) => (c['PredictPatches']?.['OK'] ?? 0) > 0)) break;
    if (Date.now() > end) throw new Error('the reliability replicas did not reach every segmenter within 30 s');
    await Promise.all(replicas.map((r) => {
      const c = createClient(ReliabilityServiceClient, 'reliability', { addresses: [r.address], defaultTimeoutMs: 60_000 });
      const { setup, voxels } = job(0);
      return score(c, setup, voxels, 60_000).finally(() => c.close());
    }));
  }
}, 180_000);

afterAll(async () => {
  client?.close();
  referenceClient?.close();
  await Promise.all([...replicas, referenceServer].filter((s) => s !== undefined).map((s) => s.shutdown()));
  await Promise.all(segmenters.map((s) => s.stop()));
  if (artifacts) rmSync(artifacts, { recursive: true, force: true });
});

describe('reliability over three segmenter processes', () => {
  it('spreads a Score job over both reliability replicas and all three segmenters, with no errors', async () => {
    const relBefore = replicas.map((r) => r.requestCounts());
    const segBefore = await Promise.all(segmenters.map(segmenterCounts));
    const results = await runJob(client);
    const rel = replicas.map((r, k) => diff(r.requestCounts(), relBefore[k]!));
    const seg = (await Promise.all(segmenters.map(segmenterCounts))).map((c, k) => diff(c, segBefore[k]!));
    process.stdout.write(
      `reliability scale-out: ${JOB_SCORES} Score calls (${referenceSegmenterCalls} segmenter calls) per reliability replica ${JSON.stringify(rel.map((c) => c['Score']?.['OK'] ?? 0))}; ` +
        `segmenter calls per segmenter ${JSON.stringify(seg.map((c) => sum(c, true)))} (Segment/PredictPatches/LoadModel: ${JSON.stringify(seg.map((c) => [c['Segment']?.['OK'] ?? 0, c['PredictPatches']?.['OK'] ?? 0, c['LoadModel']?.['OK'] ?? 0]))})\n`,
    );
    expectReference(results);
    for (const c of rel) expect(c['Score']?.['OK'] ?? 0).toBeGreaterThan(0);
    expect(rel.reduce((n, c) => n + (c['Score']?.['OK'] ?? 0), 0)).toBe(JOB_SCORES);
    for (const c of seg) expect(sum(c, true)).toBeGreaterThan(0);
    // Spread over three segmenters, the job makes exactly the calls it makes against one.
    expect(seg.reduce((n, c) => n + sum(c, true), 0)).toBe(referenceSegmenterCalls);
    expect([...rel, ...seg].map((c) => sum(c, false))).toEqual([0, 0, 0, 0, 0]);
  });

  it('loses no Score when a segmenter process is killed (SIGKILL) mid-job', async () => {
    const victim = segmenters[SEGMENTERS - 1]!;
    const relBefore = replicas.map((r) => r.requestCounts());
    const survivorsBefore = await Promise.all(segmenters.slice(0, -1).map(segmenterCounts));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => victim.child.once('exit', (_code, signal) => resolve(signal)));
    const victimPort = Number(victim.address.slice(victim.address.lastIndexOf(':') + 1));
    let completedAtKill = -1;
    let unreadAtKill = 0;
    let killing: Promise<void> | undefined;
    const results = await runJob(client, (completed) => {
      // A quarter of the way in: freeze the victim, and kill it once requests wait unread on its connections.
      if (completed === JOB_SCORES / 4) {
        completedAtKill = completed;
        victim.child.kill('SIGSTOP');
        // Over 1 KiB: more than HTTP/2 control frames, at least one request body (a PredictPatches call carries 4 KiB).
        killing = until('requests waiting on the frozen segmenter', 20_000, () => (unreadAtKill = unreadBytes(victimPort)) > 1024).then(() => void victim.child.kill('SIGKILL'));
      }
    });
    await killing;
    expect(await exited).toBe('SIGKILL');
    expect(unreadAtKill).toBeGreaterThan(1024);
    const rel = replicas.map((r, k) => diff(r.requestCounts(), relBefore[k]!));
    const survivors = (await Promise.all(segmenters.slice(0, -1).map(segmenterCounts))).map((c, k) => diff(c, survivorsBefore[k]!));
    process.stdout.write(
      `reliability failover: segmenter ${SEGMENTERS - 1} killed after ${completedAtKill}/${JOB_SCORES} Score calls with ${unreadAtKill} request bytes unread on its connections; ` +
        `Score calls per reliability replica ${JSON.stringify(rel.map((c) => c['Score']?.['OK'] ?? 0))}; segmenter calls per survivor ${JSON.stringify(survivors.map((c) => sum(c, true)))}\n`,
    );
    // Every Score succeeded with the reference result; no replica of either service answered an error.
    expectReference(results);
    expect(rel.reduce((n, c) => n + (c['Score']?.['OK'] ?? 0), 0)).toBe(JOB_SCORES);
    expect([...rel, ...survivors].map((c) => sum(c, false))).toEqual([0, 0, 0, 0]);
    // After the kill the survivors served every segmenter call: at least those of the Score calls not yet started.
    const perScore = referenceSegmenterCalls / JOB_SCORES;
    expect(survivors.reduce((n, c) => n + sum(c, true), 0)).toBeGreaterThanOrEqual((JOB_SCORES - completedAtKill - CONCURRENCY) * perScore);
  });
});
