/**
 * Scale-out of the segmenter (issue #8): three replicas — in-process servers on
 * port 0 sharing one registry and serving the same tiny U-Net — behind one
 * round-robin client. A job of 40 idempotent calls (20 Segment streams, 20
 * PredictPatches) spreads over all three, and when one replica is killed
 * mid-job (drain time 0: its open calls are reset) every call still succeeds
 * with the result a single replica computes. Per-replica counts come from the
 * servers' own counters (`RunningServer.requestCounts`), never from the client.
 * One LoadModel through the round-robin client reaches one replica; the others
 * load the version from the shared registry at their first call for it.
 *
 * The kill is made deterministic through the victim's own log: when it logs
 * `segmented` (a Segment call has its result but has not sent it yet) the test
 * stops it with drain time 0, which closes its connections before `shutdown()`
 * returns — so at least that call is cut in flight.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DType, SegmenterServiceClient } from '@purify/proto';
import { Logger, LogLevel, createClient, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import { ModelRegistry } from '@purify/artifacts';
import { makeVolume, type Volume } from '@purify/imaging';
import { bytesOfArray, segmentRemote } from '@purify/inference';
import { segmenterService } from '../src';
import { publishUNet } from './test-models';

const REPLICAS = 3;
const JOB_CALLS = 40;
const CONCURRENCY = 6;
/** The model every call names, by explicit version (as reliability and the trainer do after their LoadModel). */
const MODEL = { name: 'seg', version: 1 };
/** PredictPatches batches: float32 [4, 1, 16, 16], already normalised. */
const PATCH_SHAPE = [4, 1, 16, 16] as const;

const root = mkdtempSync(join(tmpdir(), 'segmenter-scale-'));
const replicas: RunningServer[] = [];
/** Per replica: called with each log line it writes (synchronously, from inside its handlers). */
const onLog: (((line: { msg: string }) => void) | undefined)[] = [];
const direct: SegmenterServiceClient[] = [];
let client: SegmenterServiceClient;

/** int16 CT-like volume [6, 40, 40] in [−300, 400] HU, different for every `seed`. */
function volume(seed: number): Volume<Int16Array> {
  const shape: [number, number, number] = [6, 40, 40];
  const data = Int16Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => Math.round(50 + 350 * Math.sin(i * 0.61 + seed) * Math.cos(i * 0.013 * ((i + seed) % 7))));
  return makeVolume(data, shape, { spacingXyzMm: [1, 1, 2.5] });
}

function patches(seed: number): Float32Array {
  return Float32Array.from({ length: PATCH_SHAPE.reduce<number>((a, b) => a * b, 1) }, (_, i) => (Math.sin(i * 0.3 + seed) + 1) / 2);
}

/** Task i of the job: Segment of volume i/2 (even i) or PredictPatches of batch (i−1)/2 (odd i); returns the result as numbers. */
async function task(c: SegmenterServiceClient, i: number): Promise<number[]> {
  const seed = Math.floor(i / 2);
  if (i % 2 === 0) {
    const out = await segmentRemote(c, volume(seed), { model: MODEL, overlap: 0.5, timeoutMs: 30_000 });
    return Array.from(out.labels.data);
  }
  const res = await unaryCall(c, 'predictPatches', { model: MODEL, patches: { shape: [...PATCH_SHAPE], dtype: DType.DTYPE_FLOAT32, data: Buffer.from(bytesOfArray(patches(seed))) } }, { timeoutMs: 30_000 });
  const bytes = new Uint8Array(res.probabilities!.data);
  return Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
}

/**
 * Runs the 40 tasks through `c`, `CONCURRENCY` at a time; `onDone(n)` after
 * each completion. Resolves with every result or error, by task.
 */
async function runJob(c: SegmenterServiceClient, onDone: (completed: number) => void = () => undefined): Promise<(number[] | Error)[]> {
  const results: (number[] | Error)[] = new Array(JOB_CALLS);
  let next = 0;
  let completed = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < JOB_CALLS; i = next++) {
      results[i] = await task(c, i).catch((err: unknown) => err as Error);
      onDone(++completed);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return results;
}

/** Calls answered per replica, by method and status, since `before`. */
function servedSince(before: Record<string, Record<string, number>>[]): Record<string, Record<string, number>>[] {
  return replicas.map((r, k) => {
    const now = r.requestCounts();
    const out: Record<string, Record<string, number>> = {};
    for (const [method, byCode] of Object.entries(now)) {
      for (const [code, n] of Object.entries(byCode)) {
        const d = n - (before[k]?.[method]?.[code] ?? 0);
        if (d > 0) (out[method] ??= {})[code] = d;
      }
    }
    return out;
  });
}

const okCalls = (counts: Record<string, Record<string, number>>): number => (counts['Segment']?.['OK'] ?? 0) + (counts['PredictPatches']?.['OK'] ?? 0);
const failedCalls = (counts: Record<string, Record<string, number>>): number =>
  Object.values(counts).reduce((n, byCode) => n + Object.entries(byCode).reduce((m, [code, k]) => m + (code === 'OK' ? 0 : k), 0), 0);

let reference: number[][];

beforeAll(async () => {
  await publishUNet(new ModelRegistry(root), 'seg', { depth: 2, numClasses: 3, seed: 21 }, { inputSizeYx: [16, 16], spacingXyMm: [1, 1] });
  for (let k = 0; k < REPLICAS; k++) {
    // Drain time 0: stopping a replica cuts its open calls, as a crash would.
    const logger = new Logger(LogLevel.Info, { replica: k }, (line) => onLog[k]?.(JSON.parse(line) as { msg: string }));
    replicas.push(
      await startInProcess(segmenterService, ['--port', '0', '--artifacts-dir', root, '--intra-op-threads', '1', '--inter-op-threads', '1', '--batch-size', '2', '--shutdown-grace-ms', '0'], logger),
    );
    direct.push(createClient(SegmenterServiceClient, 'segmenter', { addresses: [replicas[k]!.address], defaultTimeoutMs: 30_000 }));
  }
  client = createClient(SegmenterServiceClient, 'segmenter', { addresses: replicas.map((r) => r.address), defaultTimeoutMs: 30_000 });
  // One LoadModel, through the round-robin client: it reaches one replica.
  const info = await unaryCall(client, 'loadModel', { ref: { name: 'seg', version: 0 } });
  expect(info.ref).toEqual(MODEL);
  // The reference: the whole job on replica 0 alone.
  const single = await runJob(direct[0]!);
  reference = single.map((r, i) => {
    if (r instanceof Error) throw new Error(`reference task ${i} failed: ${r.message}`);
    return r;
  });
  // Warm-up until every replica has answered through the round-robin client (all subchannels READY).
  const end = Date.now() + 20_000;
  while (!replicas.every((r) => (r.requestCounts()['GetInfo']?.['OK'] ?? 0) > 0)) {
    if (Date.now() > end) throw new Error('not every replica became reachable through the round-robin client within 20 s');
    await unaryCall(client, 'getInfo', {});
  }
}, 120_000);

afterAll(async () => {
  client?.close();
  direct.forEach((c) => c.close());
  await Promise.all(replicas.map((r) => r.shutdown()));
  rmSync(root, { recursive: true, force: true });
});

function expectReferenceResults(results: (number[] | Error)[]): void {
  const errors = results.flatMap((r, i) => (r instanceof Error ? [`task ${i}: ${r.message}`] : []));
  expect(errors).toEqual([]);
  results.forEach((r, i) => {
    const want = reference[i]!;
    const got = r as number[];
    expect(got.length).toBe(want.length);
    if (i % 2 === 0) {
      // Labels: identical.
      expect(got).toEqual(want);
    } else {
      // Probabilities: the same session settings on every replica, so within float rounding.
      let maxDiff = 0;
      for (let j = 0; j < got.length; j++) maxDiff = Math.max(maxDiff, Math.abs((got[j] as number) - (want[j] as number)));
      expect(maxDiff).toBeLessThan(1e-6);
    }
  });
}

describe('segmenter scale-out', () => {
  it('spreads a job over all three replicas, with no errors', async () => {
    const before = replicas.map((r) => r.requestCounts());
    const results = await runJob(client);
    const served = servedSince(before);
    const split = served.map(okCalls);
    process.stdout.write(`segmenter scale-out: ${JOB_CALLS} calls served per replica ${JSON.stringify(split)} (Segment/PredictPatches: ${JSON.stringify(served.map((s) => [s['Segment']?.['OK'] ?? 0, s['PredictPatches']?.['OK'] ?? 0]))})\n`);
    expectReferenceResults(results);
    for (const n of split) expect(n).toBeGreaterThan(0);
    expect(split.reduce((a, b) => a + b, 0)).toBe(JOB_CALLS);
    expect(served.map(failedCalls)).toEqual([0, 0, 0]);
    // One LoadModel in all, yet every replica now serves seg:1 (loaded on demand from the shared registry).
    expect(replicas.reduce((n, r) => n + (r.requestCounts()['LoadModel']?.['OK'] ?? 0), 0)).toBe(1);
    for (const c of direct) expect((await unaryCall(c, 'getInfo', {})).capabilities['models.loaded']).toBe('seg:1@cpu');
  });

  it('loses no call when a replica is killed mid-job', async () => {
    const k = REPLICAS - 1;
    const victim = replicas[k]!;
    const before = replicas.map((r) => r.requestCounts());
    let killed: Promise<void> | undefined;
    let completed = 0;
    let completedAtKill = -1;
    onLog[k] = (line) => {
      // Once the job is under way, at the victim's next finished inference: that Segment call is in flight.
      if (line.msg === 'segmented' && killed === undefined && completed >= 4) {
        completedAtKill = completed;
        killed = victim.shutdown();
      }
    };
    const results = await runJob(client, (n) => (completed = n));
    onLog[k] = undefined;
    expect(killed).toBeDefined();
    await killed;
    const served = servedSince(before);
    const split = served.map(okCalls);
    const cut = failedCalls(served[k]!);
    process.stdout.write(`segmenter failover: replica ${k} killed after ${completedAtKill}/${JOB_CALLS} calls; served per replica ${JSON.stringify(split)}; calls cut on the killed replica: ${cut}\n`);
    // Every call succeeded, with the single-replica result.
    expectReferenceResults(results);
    // The killed replica cut at least the call it was answering; the survivors repeated it.
    expect(cut).toBeGreaterThanOrEqual(1);
    expect(served.slice(0, k).map(failedCalls)).toEqual([0, 0]);
    // Each call succeeded at least once (a call cut after its server answered may run twice: idempotent).
    expect(split.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(JOB_CALLS);
    // The killed replica served nothing after the kill: at most the calls done by then plus those in flight.
    expect(split[k]).toBeLessThanOrEqual(completedAtKill + CONCURRENCY);
  });
});
