/**
 * The reliability service against an in-process FAKE segmenter (see
 * fake-segmenter.ts): protocol, validation, deadline forwarding, and that the
 * served result equals the library run locally on the same model.
 */
import { BorderMode as ProtoBorderMode, MapKind, ReliabilityServiceClient, type ReliabilityConfig, type ScoreSetup } from '@purify/proto';
import { createClient, listServices, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import type { ServiceError } from '@grpc/grpc-js';
import { appearancePerturbation, FEATURE_SCHEMA, flipX, NUM_FEATURES, perturbAppearance, scoreReliability } from '@purify/reliability';
import { reliabilityService } from '../src';
import { startFakeSegmenter, toyNetwork, toyNormalize, TOY_CLASSES, type FakeSegmenter } from './fake-segmenter';
import { header, score } from './score-client';

let fake: FakeSegmenter;
let server: RunningServer;
let client: ReliabilityServiceClient;

beforeAll(async () => {
  fake = await startFakeSegmenter();
  server = await startInProcess(reliabilityService, ['--port', '0', '--segmenter-addresses', fake.server.address, '--patch-batch-size', '5', '--map-chunk-bytes', '1024']);
  client = createClient(ReliabilityServiceClient, 'reliability', { addresses: [server.address], defaultTimeoutMs: 20_000 });
});
afterAll(async () => {
  client.close();
  await server.shutdown();
  await fake.server.shutdown();
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
const setup = (o: Partial<ScoreSetup> = {}): ScoreSetup => ({ model: { name: 'toy', version: 0 }, image: header([2, 32, 32]), config: config(), maps: [], round: 0, ...o });

/** A raw "HU" image [2, 32, 32]: a bright disc and a ramp, values around the toy window [0, 100]. */
function phantom(): Float32Array {
  const out = new Float32Array(2 * 32 * 32);
  for (let s = 0; s < 2; s++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[s * 1024 + y * 32 + x] = ((x - 14 - 3 * s) ** 2 + (y - 17) ** 2 < 80 ? 90 : 20) + 1.5 * x - 10;
  return out;
}

/** [z, K, h, w] → [K, z, h, w]. */
function classFirst(p: Float32Array, z: number, hw: number): Float32Array {
  const out = new Float32Array(p.length);
  for (let s = 0; s < z; s++) for (let c = 0; c < TOY_CLASSES; c++) out.set(p.subarray((s * TOY_CLASSES + c) * hw, (s * TOY_CLASSES + c + 1) * hw), (c * z + s) * hw);
  return out;
}

describe('reliability service (fake segmenter)', () => {
  it('lists its service through reflection and serves the feature schema', async () => {
    expect(await listServices(server.address)).toContain('purify.v1.ReliabilityService');
    const schema = await unaryCall(client, 'getFeatureSchema', {});
    expect(schema.version).toBe('v2');
    expect(schema.features.map((f) => f.name)).toEqual(FEATURE_SCHEMA.features.map((f) => f.name));
    expect(schema.features[3]).toEqual({ name: 'patch_variance', description: FEATURE_SCHEMA.features[3]!.description, min: 0, max: 0.25, normalization: FEATURE_SCHEMA.features[3]!.normalization });
    expect(FEATURE_SCHEMA.features[3]!.normalization).toMatch(/^\(log10\(max\(x, 0\.0001\)\)/);
  });

  it('scores an image: the served result equals the library run locally on the same model', async () => {
    // 2×32×32, P 16, s 8, shift, both views, every map; local reference: the library with the toy network called directly.
    const raw = phantom();
    const maps = [MapKind.MAP_KIND_RELIABILITY, MapKind.MAP_KIND_PSEUDO_LABEL, MapKind.MAP_KIND_COMPOSED_LABEL, MapKind.MAP_KIND_PATCH_VARIANCE, MapKind.MAP_KIND_JS_DIVERGENCE, MapKind.MAP_KIND_REGION_INDEX, MapKind.MAP_KIND_MAX_PROBABILITY];
    const out = await score(client, setup({ config: config({ flipView: true, appearanceView: true, seed: 5 }), maps, round: 2 }), raw);
    const r = out.result;
    expect(r.model).toEqual({ name: 'toy', version: 3 });
    expect(r.grid!.imageShapeZyx).toEqual([2, 32, 32]);
    // x anchors: cells [0,8) … [24,32) → centred top-lefts −4, 4, 12, 20 → shift [0, 4, 12, 16]; centres +8
    expect(r.grid!.anchorCentresYx.slice(0, 8)).toEqual([8, 8, 8, 12, 8, 20, 8, 24]);
    expect(r.grid!.regions.length).toBe(2 * 16);
    expect(r.features!.numRows).toBe(32);
    expect(r.features!.numFeatures).toBe(NUM_FEATURES);
    expect(r.features!.schemaVersion).toBe('v2');
    expect(r.maps).toEqual(maps);
    expect([r.segmentMs, r.patchesMs, r.featuresMs].every((t) => t >= 0)).toBe(true);

    const z = 2;
    const hw = 1024;
    const wholeOf = (img: Float32Array) => classFirst(toyNetwork(toyNormalize(img), z, 32, 32), z, hw);
    const local = await scoreReliability({
      image: toyNormalize(raw),
      shapeZyx: [2, 32, 32],
      whole: wholeOf(raw),
      flip: flipX(wholeOf(flipX(raw, 32)), 32),
      appearance: wholeOf(perturbAppearance(raw, appearancePerturbation(5))),
      predict: async (patches, [n, , p]) => toyNetwork(patches, n, p, p),
      round: 2,
      options: { patchSize: 16, stride: 8 },
    });
    expect(r.features!.values.length).toBe(local.features.length);
    r.features!.values.forEach((v, i) => expect(v).toBeCloseTo(local.features[i]!, 5));
    r.scores.forEach((v, i) => expect(v).toBeCloseTo(local.scores[i]!, 5));
    r.sliceScores.forEach((v, i) => expect(v).toBeCloseTo(local.sliceScores[i]!, 5));
    expect(Array.from(out.maps.get(MapKind.MAP_KIND_PSEUDO_LABEL)!)).toEqual(Array.from(local.maps.pseudoLabel));
    expect(Array.from(out.maps.get(MapKind.MAP_KIND_REGION_INDEX)!)).toEqual(Array.from(local.maps.regionIndex));
    out.maps.get(MapKind.MAP_KIND_RELIABILITY)!.forEach((v, i) => expect(v).toBeCloseTo(local.maps.reliability[i]!, 5));
    out.maps.get(MapKind.MAP_KIND_MAX_PROBABILITY)!.forEach((v, i) => expect(v).toBeCloseTo(local.maps.maxProbability[i]!, 5));
    // The toy network sees zero padding at patch edges, so patches disagree somewhere: the features are not trivial.
    expect(Math.max(...out.maps.get(MapKind.MAP_KIND_JS_DIVERGENCE)!)).toBeGreaterThan(1e-4);
    expect(Math.max(...out.maps.get(MapKind.MAP_KIND_PATCH_VARIANCE)!)).toBeGreaterThan(1e-5);
  });

  it('forwards its deadline to every segmenter call', async () => {
    fake.calls.length = 0;
    const before = Date.now();
    await score(client, setup({ config: config({ flipView: true }) }), phantom(), 8000);
    const clientDeadline = before + 8000;
    // LoadModel, 2 Segment streams, ⌈2·16/5⌉ = 7 PredictPatches calls — each with a deadline no later than ours.
    expect(fake.calls.map((c) => c.method).sort()).toEqual(['LoadModel', ...Array(7).fill('PredictPatches'), 'Segment', 'Segment']);
    // gRPC sends the remaining time, and the receiver adds it to its own clock on arrival, so a forwarded
    // deadline lands a little after ours (transit time; up to ~100 ms on a loaded machine). Without
    // forwarding it would be the service's own segmenter timeout away (minutes), far beyond this slack.
    for (const c of fake.calls) expect(c.deadlineMs).toBeLessThanOrEqual(clientDeadline + 1000);
  });

  it('splits regions by class when asked', async () => {
    const out = await score(client, setup({ config: config({ splitByClass: true }) }), phantom());
    const regions = out.result.grid!.regions;
    expect(regions.length).toBeGreaterThan(32);
    expect(regions.every((g) => g.classIndex >= 0 && g.classIndex < TOY_CLASSES)).toBe(true);
    expect(regions.reduce((a, g) => a + g.pixelCount, 0)).toBe(2 * 32 * 32);
  });

  it.each([
    // [case, setup override, voxels, grpc status, exact details]
    ['stride 0', { config: config({ stride: 0 }) }, true, 3, '`setup.config.stride` must be an integer > 0, got 0'],
    ['patch larger than the image', { config: config({ patchSize: 48 }) }, true, 3, '`setup.config.patch_size` must not exceed the image (32 × 32 pixels, [y, x]), got 48'],
    ['stride above the patch', { config: config({ stride: 24 }) }, true, 3, '`setup.config.stride` must not exceed config.patch_size (16), or pixels between patches are never predicted, got 24'],
    ['no config', { config: undefined }, true, 3, '`setup.config` is required, got nothing'],
    ['a 2-dim image', { image: { ...header([2, 32, 32]), shapeZyx: [32, 32] } }, true, 3, '`setup.image.shape_zyx` must have 3 positive dims [z, y, x], got [32, 32]'],
    ['unspecified map', { maps: [MapKind.MAP_KIND_RELIABILITY, MapKind.MAP_KIND_UNSPECIFIED] }, true, 3, '`setup.maps[1]` must be a MapKind other than MAP_KIND_UNSPECIFIED, got "MAP_KIND_UNSPECIFIED"'],
    ['empty image (no voxels)', {}, false, 3, "`chunk` must carry the image's 8192 bytes of voxels, got none (an empty image)"],
    ['unknown model: the segmenter NOT_FOUND passes through', { model: { name: 'nope', version: 0 } }, true, 5, '`setup.model`: loadModel failed: model "nope" is not in the registry at /fake'],
    ['image/model channel mismatch', { model: { name: 'two-channel', version: 0 } }, true, 3, '`setup.model` (two-channel:3) takes 2 input channels, but `setup.image` is a one-channel [z, y, x] volume; model input channels, got 2'],
    ['image spacing ≠ model spacing', { model: { name: 'coarse', version: 0 } }, true, 3, '`setup.image.spacing_xyz_mm` must match the in-plane spacing model coarse:3 was trained at (2, 2 mm, x, y): the segmenter would resample, the anchor patches would not; resample the image first, got [1, 1, 1]'],
    ['patch size the network refuses', { config: config({ patchSize: 14, stride: 7 }) }, true, 3, '`setup.config.patch_size`: predictPatches failed: `patches.shape` must have y and x multiples of 4 (the model size multiple), got [5, 1, 14, 14]'],
  ])('Score refuses %s', async (_name, override, withVoxels, code, details) => {
    const err = (await score(client, setup(override as Partial<ScoreSetup>), withVoxels ? phantom() : undefined).catch((e: unknown) => e)) as ServiceError;
    expect([err.code, err.details]).toEqual([code, details]);
  });
});
