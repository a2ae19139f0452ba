/**
 * End to end with the REAL segmenter: a tiny U-Net built with @purify/models,
 * exported to ONNX and published into a temporary registry; the segmenter runs
 * as its own process (services never import each other) on port 0, the
 * reliability service in-process.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ServiceError } from '@grpc/grpc-js';
import { BorderMode as ProtoBorderMode, MapKind, ReliabilityServiceClient, type ReliabilityConfig, type ScoreSetup } from '@purify/proto';
import { createClient, serviceMain, startInProcess, startServiceProcess, type RunningServer, type ServiceProcess } from '@purify/runtime';
import { FEATURE_INDEX, FEATURE_SCHEMA, NUM_FEATURES } from '@purify/reliability';
import { reliabilityService } from '../src';
import { header, score } from './score-client';

const TSX = pathToFileURL(require.resolve('tsx')).href;
const NODE_FLAGS = [`--import=${TSX}`, '--conditions=@purify/source'];

let artifacts: string;
let segmenter: ServiceProcess | undefined;
let server: RunningServer;
let client: ReliabilityServiceClient;

beforeAll(async () => {
  artifacts = mkdtempSync(join(tmpdir(), 'reliability-e2e-'));
  execFileSync(process.execPath, [...NODE_FLAGS, join(__dirname, 'fixtures/publish-unet.mjs'), artifacts, 'tiny'], { encoding: 'utf8' });
  segmenter = await startServiceProcess(serviceMain(resolve(__dirname, '../../..'), 'segmenter'), ['--port', '0', '--artifacts-dir', artifacts, '--log-level', 'warn', '--intra-op-threads', '1']);
  server = await startInProcess(reliabilityService, ['--port', '0', '--segmenter-addresses', segmenter.address]);
  client = createClient(ReliabilityServiceClient, 'reliability', { addresses: [server.address], defaultTimeoutMs: 30_000 });
});

afterAll(async () => {
  client?.close();
  await server?.shutdown();
  await segmenter?.stop();
  rmSync(artifacts, { recursive: true, force: true });
});

const config = (o: Partial<ReliabilityConfig> = {}): ReliabilityConfig => ({
  patchSize: 16,
  stride: 8,
  borderMode: ProtoBorderMode.BORDER_MODE_SHIFT,
  splitByClass: false,
  flipView: false,
  appearanceView: false,
  seed: 0,
  patchBatchSize: 0,
  ...o,
});
const setup = (o: Partial<ScoreSetup> = {}): ScoreSetup => ({ model: { name: 'tiny', version: 0 }, image: header([2, 32, 32]), config: config(), maps: [], round: 0, ...o });

/** Raw "HU" image [2, 32, 32]: soft-tissue disc (60 HU) in fat (−80 HU) with a ramp, inside the model's window [−100, 200]. */
function phantom(): Float32Array {
  const out = new Float32Array(2048);
  for (let s = 0; s < 2; s++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[s * 1024 + y * 32 + x] = ((x - 15 - 2 * s) ** 2 + (y - 16) ** 2 < 90 ? 60 : -80) + 4 * y;
  return out;
}

const col = (name: string): number => FEATURE_INDEX[name] as number;

describe('reliability service with the real segmenter', () => {
  it('one patch covering the whole slice reproduces the whole-image prediction (same normalisation on both paths)', async () => {
    // 2×32×32, P 32 = image, stride 32 → one anchor per slice = the whole slice, tile 32 → Segment runs one tile.
    // Patches are normalised by the reliability service, Segment's input by the segmenter: equal only if both normalise alike.
    const out = await score(client, setup({ config: config({ patchSize: 32, stride: 32 }), maps: [MapKind.MAP_KIND_JS_DIVERGENCE, MapKind.MAP_KIND_PATCH_VARIANCE] }), phantom());
    const f = out.result.features!;
    expect(f.numRows).toBe(2);
    for (let r = 0; r < 2; r++) {
      expect(f.values[r * NUM_FEATURES + col('js_divergence')]).toBeLessThan(1e-9);
      expect(f.values[r * NUM_FEATURES + col('argmax_agreement')]).toBe(1);
      expect(f.values[r * NUM_FEATURES + col('patch_variance')]).toBe(0);
    }
    expect(Math.max(...out.maps.get(MapKind.MAP_KIND_JS_DIVERGENCE)!)).toBeLessThan(1e-9);
  });

  it('scores overlapping anchor patches with both views: shapes, ranges, and real context effects', async () => {
    const out = await score(client, setup({ config: config({ flipView: true, appearanceView: true, seed: 3 }), maps: [MapKind.MAP_KIND_RELIABILITY, MapKind.MAP_KIND_JS_DIVERGENCE], round: 1 }), phantom());
    const r = out.result;
    expect(r.model).toEqual({ name: 'tiny', version: 1 });
    expect(r.grid!.regions.length).toBe(32);
    expect(r.features!.values.length).toBe(32 * NUM_FEATURES);
    r.features!.values.forEach((v, i) => {
      const spec = FEATURE_SCHEMA.features[i % NUM_FEATURES]!;
      expect([spec.name, v >= spec.min - 1e-6 && v <= spec.max + 1e-6]).toEqual([spec.name, true]);
    });
    expect(r.features!.values[col('flip_view')]).toBe(1);
    expect(r.features!.values[col('round')]).toBe(1);
    expect(r.scores.every((s) => s >= 0 && s <= 1)).toBe(true);
    // A 16-pixel crop of a depth-3 U-Net lacks context the whole slice has: whole and composed differ somewhere.
    expect(Math.max(...out.maps.get(MapKind.MAP_KIND_JS_DIVERGENCE)!)).toBeGreaterThan(1e-6);
    expect(out.maps.get(MapKind.MAP_KIND_RELIABILITY)!.length).toBe(2048);
  });

  it.each([
    // [case, setup override, grpc status, start of the details]
    ['unknown model: NOT_FOUND passes through', { model: { name: 'missing', version: 0 } }, 5, '`setup.model`: loadModel failed: model "missing"'],
    ['a patch size that is not a multiple of the size multiple (4)', { config: config({ patchSize: 14, stride: 7 }) }, 3, '`setup.config.patch_size`: predictPatches failed:'],
  ])('refuses %s', async (_name, override, code, details) => {
    const err = (await score(client, setup(override as Partial<ScoreSetup>), phantom()).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(code);
    expect(err.details.startsWith(details) ? details : err.details).toBe(details);
  });
});
