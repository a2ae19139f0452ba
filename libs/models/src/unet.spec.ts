import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { Norm, REFERENCE_UNET, resolveUNetConfig, Upsampling, type UNetConfig } from './config';
import { ModelConfigError, ModelInputError } from './errors';
import { BilinearUpsampling2D, FusedBatchNormalization, InstanceNormalization, SeededDropout } from './layers';
import { buildUNet } from './unet';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('buildUNet: parameter counts (computed by hand)', () => {
  it.each<[string, Partial<UNetConfig>, number, number]>([
    // Reference: 3 levels 16-32-64, batch norm (convs without bias), transposed conv, C=1, K=5.
    //   enc0: 3·3·1·16 + 2·16 (γβ) + 3·3·16·16 + 2·16          =   2512
    //   enc1: 3·3·16·32 + 64 + 3·3·32·32 + 64                    =  13952
    //   enc2: 3·3·32·64 + 128 + 3·3·64·64 + 128                  =  55552
    //   up1:  2·2·64·32 + 32 (bias)                              =   8224
    //   dec1: 3·3·64·32 + 64 + 3·3·32·32 + 64                    =  27776
    //   up0:  2·2·32·16 + 16                                     =   2064
    //   dec0: 3·3·32·16 + 32 + 3·3·16·16 + 32                    =   6976
    //   head: 16·5 + 5                                           =     85
    //   total trainable 117141; running mean+var 2·(16+16+32+32+64+64+32+32+16+16) = 640
    ['reference', {}, 117141, 640],
    // No norm (convs with bias), depth 2, width 4, C=2, K=3, nearest resize + 3×3 conv:
    //   enc0 (9·2·4+4) + (9·4·4+4) = 224; enc1 (9·4·8+8) + (9·8·8+8) = 880; up0 9·8·4+4 = 292;
    //   dec0 (9·8·4+4) + (9·4·4+4) = 440; head 4·3+3 = 15 → 1851
    ['none/nearest/depth 2', { norm: Norm.None, depth: 2, baseWidth: 4, inputChannels: 2, numClasses: 3, upsampling: Upsampling.Nearest }, 1851, 0],
    // Instance norm (γβ, no statistics), depth 2, width 4, C=1, K=2, transposed:
    //   enc0 36+8+144+8 = 196; enc1 288+16+576+16 = 896; up0 2·2·8·4+4 = 132; dec0 288+8+144+8 = 448; head 4·2+2 = 10 → 1682
    ['instance/transposed/depth 2', { norm: Norm.Instance, depth: 2, baseWidth: 4, numClasses: 2 }, 1682, 0],
  ])('%s', (_name, config, trainable, nonTrainable) => {
    const m = buildUNet(config);
    try {
      expect(m.numParams).toBe(trainable);
      expect(m.numNonTrainableParams).toBe(nonTrainable);
    } finally {
      m.dispose();
    }
  });
});

describe('buildUNet: outputs', () => {
  it.each<[string, Partial<UNetConfig>, [number, number, number, number]]>([
    // [N, H, W, C] → [N, H, W, K]
    ['reference, 2×16×16×1 → 2×16×16×5', {}, [2, 16, 16, 1]],
    ['depth 1 (no pooling), 1×3×5×1', { depth: 1, baseWidth: 4 }, [1, 3, 5, 1]],
    ['instance/bilinear/dropout, 3×8×24×2 → K=3', { norm: Norm.Instance, upsampling: Upsampling.Bilinear, dropout: 0.5, baseWidth: 4, inputChannels: 2, numClasses: 3 }, [3, 8, 24, 2]],
    ['none/nearest depth 4, 1×16×8×1', { norm: Norm.None, upsampling: Upsampling.Nearest, depth: 4, baseWidth: 2 }, [1, 16, 8, 1]],
  ])('%s: shape [N, H, W, K], probabilities in [0, 1] summing to 1 per pixel', (_name, config, shape) => {
    const before = tf.memory().numTensors;
    const m = buildUNet(config);
    const x = tf.randomNormal<tf.Rank.R4>(shape, 0, 1, 'float32', 7);
    const p = m.predict(x);
    expect(p.shape).toEqual([shape[0], shape[1], shape[2], m.config.numClasses]);
    const [err, min] = tf.tidy(() => [tf.max(tf.abs(tf.sub(tf.sum(p, -1), 1))).dataSync()[0]!, tf.min(p).dataSync()[0]!]);
    expect(err).toBeLessThan(1e-6);
    expect(min).toBeGreaterThanOrEqual(0);
    tf.dispose([x, p]);
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('predict leaves no tensor behind except its result', () => {
    const m = buildUNet({ baseWidth: 4, dropout: 0.3 });
    const x = tf.ones<tf.Rank.R4>([1, 8, 8, 1]);
    const before = tf.memory().numTensors;
    const p = m.predict(x);
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([x, p]);
    m.dispose();
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const [a, b, c] = [buildUNet({ baseWidth: 4, seed: 3 }), buildUNet({ baseWidth: 4, seed: 3 }), buildUNet({ baseWidth: 4, seed: 4 })];
    const wa = a.getWeights()[0]!.values;
    expect(b.getWeights()[0]!.values).toEqual(wa);
    expect(c.getWeights()[0]!.values).not.toEqual(wa);
    [a, b, c].forEach((m) => m.dispose());
  });

  it.each<[string, [number, number, number, number], string]>([
    ['H not a multiple of 4', [1, 6, 8, 1], 'images must be [N, H, W, 1] with N ≥ 1 and H, W positive multiples of 4 (2^(depth−1)), got [1, 6, 8, 1]'],
    ['wrong channel count', [1, 8, 8, 3], 'images must be [N, H, W, 1] with N ≥ 1 and H, W positive multiples of 4 (2^(depth−1)), got [1, 8, 8, 3]'],
  ])('rejects input with %s', (_name, shape, message) => {
    const m = buildUNet({ baseWidth: 2 });
    const x = tf.zeros<tf.Rank.R4>(shape);
    expect(() => m.predict(x)).toThrow(new ModelInputError(message));
    x.dispose();
    m.dispose();
  });
});

describe('SegModel.logits in training mode', () => {
  it('updates BatchNorm running statistics as 0.9·old + 0.1·batch (biased variance), and predict uses them', () => {
    const m = buildUNet({ baseWidth: 2, depth: 1 }, { namePrefix: 'bn_check_' });
    const x = tf.randomNormal<tf.Rank.R4>([2, 4, 4, 1], 0, 1, 'float32', 3);
    const byName = (name: string): Float32Array => m.getWeights().find((w) => w.name === name)!.values;
    // Independent forward of the first conv: 'same' 3×3, no bias → per-channel batch mean and biased variance.
    const [mean, variance] = tf.tidy(() => {
      const kernel = tf.tensor4d(byName('enc0_conv1/kernel'), [3, 3, 1, 2]);
      const y = tf.conv2d(x, kernel, 1, 'same');
      const mo = tf.moments(y, [0, 1, 2]);
      return [Array.from(mo.mean.dataSync()), Array.from(mo.variance.dataSync())];
    });
    tf.dispose(m.logits(x, true));
    // Initial statistics: mean 0, variance 1.
    Array.from(byName('enc0_bn1/moving_mean')).forEach((v, c) => expect(v).toBeCloseTo(0.1 * mean[c]!, 5));
    Array.from(byName('enc0_bn1/moving_variance')).forEach((v, c) => expect(v).toBeCloseTo(0.9 + 0.1 * variance[c]!, 5));
    // Inference does not touch them.
    const before = byName('enc0_bn1/moving_mean');
    tf.dispose(m.predict(x));
    expect(byName('enc0_bn1/moving_mean')).toEqual(before);
    x.dispose();
    m.dispose();
  });
});

describe('buildUNet: names and weights', () => {
  it('defaults to a fresh unique prefix, so equal models coexist', () => {
    const a = buildUNet({ baseWidth: 2 });
    const b = buildUNet({ baseWidth: 2 });
    expect(a.namePrefix).toMatch(/^unet\d+_$/);
    expect(b.namePrefix).not.toBe(a.namePrefix);
    expect(a.networks.probabilities.layers[1]!.name).toBe(`${a.namePrefix}enc0_conv1`);
    // Prefix-free weight names are the same in both models.
    expect(a.getWeights().map((w) => w.name)).toEqual(b.getWeights().map((w) => w.name));
    expect(a.getWeights()[0]!.name).toBe('enc0_conv1/kernel');
    a.dispose();
    b.dispose();
  });

  it('refuses a prefix held by a live model, and frees it on dispose', () => {
    const a = buildUNet({ baseWidth: 2 }, { namePrefix: 'student_' });
    expect(() => buildUNet({ baseWidth: 2 }, { namePrefix: 'student_' })).toThrow(
      new ModelConfigError("model name prefix 'student_' is in use by a live model in this process; dispose it or pass another namePrefix"),
    );
    a.dispose();
    const b = buildUNet({ baseWidth: 2 }, { namePrefix: 'student_' });
    b.dispose();
  });

  it('rejects a prefix tfjs could not use as a name', () => {
    expect(() => buildUNet({}, { namePrefix: '_x' })).toThrow(new ModelConfigError('namePrefix must match /^[A-Za-z0-9][-A-Za-z0-9._]*$/, got "_x"'));
  });

  it('frees every variable on dispose', () => {
    const before = tf.memory().numTensors;
    const m = buildUNet();
    expect(tf.memory().numTensors).toBe(before + 56); // 36 trainable + 20 running statistics
    m.dispose();
    m.dispose(); // idempotent
    expect(tf.memory().numTensors).toBe(before);
  });

  it('setWeights copies another model of the same config exactly', () => {
    const a = buildUNet({ baseWidth: 4, norm: Norm.Instance, seed: 1 });
    const b = buildUNet({ baseWidth: 4, norm: Norm.Instance, seed: 2 });
    b.setWeights(a.getWeights());
    const x = tf.randomNormal<tf.Rank.R4>([2, 8, 8, 1], 0, 1, 'float32', 1);
    const [pa, pb] = [a.predict(x), b.predict(x)];
    expect(pb.dataSync()).toEqual(pa.dataSync());
    tf.dispose([x, pa, pb]);
    a.dispose();
    b.dispose();
  });

  it.each<[string, (w: ReturnType<ReturnType<typeof buildUNet>['getWeights']>) => unknown[], string]>([
    ['a missing weight', (ws) => ws.slice(1), "setWeights: weight 'enc0_conv1/kernel' is missing (received 55 weights)"],
    [
      'a wrong shape',
      (ws) => ws.map((w, i) => (i === 0 ? { ...w, shape: [3, 3, 2, 16], values: new Float32Array(288) } : w)),
      "setWeights: weight 'enc0_conv1/kernel' must have shape [3, 3, 1, 16], got [3, 3, 2, 16]",
    ],
    ['an unknown extra weight', (ws) => [...ws, { name: 'x/kernel', shape: [1], trainable: true, values: new Float32Array(1) }], "setWeights: expected 56 weights, got 57 (unknown weight 'x/kernel')"],
  ])('setWeights rejects %s', (_name, edit, message) => {
    const m = buildUNet();
    expect(() => m.setWeights(edit(m.getWeights()) as never)).toThrow(new ModelInputError(message));
    m.dispose();
  });
});

describe('resolveUNetConfig', () => {
  it('fills the reference defaults', () => {
    expect(resolveUNetConfig({})).toEqual(REFERENCE_UNET);
  });

  it.each<[Partial<Record<keyof UNetConfig, unknown>>, string]>([
    [{ depth: 0 }, 'UNetConfig.depth must be an integer in [1, 8], got 0'],
    [{ depth: 2.5 }, 'UNetConfig.depth must be an integer in [1, 8], got 2.5'],
    [{ baseWidth: -1 }, 'UNetConfig.baseWidth must be an integer in [1, 1024], got -1'],
    [{ norm: 'group' }, "UNetConfig.norm must be one of 'batch', 'instance', 'none', got \"group\""],
    [{ upsampling: 'bicubic' }, "UNetConfig.upsampling must be one of 'transposed', 'nearest', 'bilinear', got \"bicubic\""],
    [{ dropout: 1 }, 'UNetConfig.dropout must be a number in [0, 1), got 1'],
    [{ numClasses: 1 }, 'UNetConfig.numClasses must be an integer in [2, 4096], got 1'],
    [{ inputChannels: 0 }, 'UNetConfig.inputChannels must be an integer in [1, 4096], got 0'],
  ])('rejects %j', (bad, message) => {
    expect(() => resolveUNetConfig(bad as Partial<UNetConfig>)).toThrow(new ModelConfigError(message));
  });
});

describe('FusedBatchNormalization layer', () => {
  /** One training-mode call of `layer` on x (seeded), with gamma/beta set: y, d(Σ y⊙r)/d(x, gamma, beta), then the running statistics. */
  function trainingCall(layer: tf.layers.Layer, shape: [number, number, number, number], axis: number): Float32Array[] {
    const channels = shape[axis < 0 ? 3 : axis]!;
    return tf.tidy(() => {
      const x = tf.variable(tf.randomNormal(shape, 0.5, 2, 'float32', 11));
      const r = tf.randomNormal(shape, 0, 1, 'float32', 12);
      layer.apply(tf.zeros(shape)); // builds the weights
      layer.setWeights([tf.randomNormal([channels], 1, 0.3, 'float32', 13), tf.randomNormal([channels], 0, 0.3, 'float32', 14), tf.zeros([channels]), tf.ones([channels])]);
      const [gamma, beta] = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      let y: tf.Tensor | undefined;
      const { grads } = tf.variableGrads(() => {
        y = tf.keep(layer.apply(x, { training: true }) as tf.Tensor);
        return tf.sum(tf.mul(y, r));
      }, [x, gamma!, beta!]);
      const out = [y!, grads[x.name]!, grads[gamma!.name]!, grads[beta!.name]!, ...layer.getWeights().slice(2)];
      const values = out.map((t) => t.dataSync().slice() as Float32Array);
      tf.dispose([y!, x]);
      return values;
    });
  }
  const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

  it.each([
    // [x shape, axis]: the U-Net's NHWC layers
    [[2, 4, 4, 3], -1],
    [[1, 5, 3, 2], -1],
    [[3, 2, 6, 4], 3],
  ] as const)('x %j axis %d: output, gradients and running statistics equal tf.layers.batchNormalization', (shape, axis) => {
    const args = { axis, momentum: 0.9, epsilon: 1e-5 };
    const ours = new FusedBatchNormalization(args);
    const keras = tf.layers.batchNormalization(args);
    const a = trainingCall(ours, [...shape], axis);
    const b = trainingCall(keras, [...shape], axis);
    const names = ['y', 'dx', 'dgamma', 'dbeta', 'moving_mean', 'moving_variance'];
    names.forEach((name, i) => expect([name, maxDiff(a[i]!, b[i]!) <= 2e-5 * Math.max(1, ...Array.from(b[i]!, Math.abs))]).toEqual([name, true]));
    // Inference uses the running statistics, as tfjs-layers does.
    const x = tf.randomNormal([...shape], 0, 1, 'float32', 15);
    expect(maxDiff((ours.apply(x) as tf.Tensor).dataSync() as Float32Array, (keras.apply(x) as tf.Tensor).dataSync() as Float32Array)).toBeLessThan(1e-6);
    expect(ours.getClassName()).toBe('BatchNormalization');
    ours.dispose();
    keras.dispose();
  });

  it('leaves another axis to tfjs-layers: the same training output and running statistics', () => {
    // (tfjs-core's own BatchNorm gradient fails for a non-last axis, so only the forward pass is compared.)
    const args = { axis: 1, momentum: 0.9, epsilon: 1e-5 };
    const [ours, keras] = [new FusedBatchNormalization(args), tf.layers.batchNormalization(args)];
    const x = tf.randomNormal([2, 3, 4, 5], 0.5, 2, 'float32', 16);
    const [a, b] = [ours, keras].map((layer) => [(layer.apply(x, { training: true }) as tf.Tensor).dataSync() as Float32Array, ...layer.getWeights().map((w) => w.dataSync() as Float32Array)]);
    a!.forEach((v, i) => expect(maxDiff(v, b![i]!)).toBeLessThan(1e-6));
    tf.dispose(x);
    ours.dispose();
    keras.dispose();
  });
});

describe('InstanceNormalization layer', () => {
  it('normalises each sample and channel over H×W (hand-computed 1×2×2×2 case)', () => {
    // channel 0 = [1, 2, 3, 4]: mean 2.5, biased var 1.25 → (x − 2.5)/√(1.25 + 1e-5)
    // channel 1 = [5, 5, 5, 5]: var 0 → 0 everywhere
    const layer = new InstanceNormalization({ epsilon: 1e-5 });
    const x = tf.tensor4d([1, 5, 2, 5, 3, 5, 4, 5], [1, 2, 2, 2]);
    const y = layer.apply(x) as tf.Tensor;
    const s = Math.sqrt(1.25 + 1e-5);
    const expected = [-1.5 / s, 0, -0.5 / s, 0, 0.5 / s, 0, 1.5 / s, 0];
    Array.from(y.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
    tf.dispose([x, y]);
    layer.dispose();
  });
});

describe('SeededDropout layer', () => {
  it('is the identity at inference and reproducible from its seed source in training', () => {
    const seeds = [11, 12];
    const make = (): SeededDropout => {
      let i = 0;
      return new SeededDropout({ rate: 0.5, seedSource: () => seeds[i++ % 2]! });
    };
    const [a, b] = [make(), make()];
    const x = tf.ones([1, 32, 32, 4]);
    const inference = a.apply(x, { training: false }) as tf.Tensor;
    expect(inference.dataSync()).toEqual(x.dataSync());
    const [a1, b1, a2] = [a.apply(x, { training: true }), b.apply(x, { training: true }), a.apply(x, { training: true })] as tf.Tensor[];
    expect(b1!.dataSync()).toEqual(a1!.dataSync()); // same seed → same mask
    expect(a2!.dataSync()).not.toEqual(a1!.dataSync()); // next seed → new mask
    // Kept units are scaled by 1/(1 − 0.5) = 2; about half are dropped.
    const values = Array.from(a1!.dataSync());
    expect(new Set(values)).toEqual(new Set([0, 2]));
    const dropped = values.filter((v) => v === 0).length / values.length;
    expect(dropped).toBeGreaterThan(0.4);
    expect(dropped).toBeLessThan(0.6);
    tf.dispose([x, inference, a1!, b1!, a2!]);
  });
});

describe('BilinearUpsampling2D layer (half-pixel centres, PyTorch align_corners=False)', () => {
  it('upsamples a 2×2 image (hand-computed)', () => {
    // rows r0 = [1, 3] → [1, 1.5, 2.5, 3]; r1 = [5, 7] → [5, 5.5, 6.5, 7]
    // output rows: r0, .75·r0 + .25·r1, .25·r0 + .75·r1, r1
    const layer = new BilinearUpsampling2D();
    const x = tf.tensor4d([1, 3, 5, 7], [1, 2, 2, 1]);
    const y = layer.apply(x) as tf.Tensor;
    expect(y.shape).toEqual([1, 4, 4, 1]);
    expect(Array.from(y.dataSync())).toEqual([1, 1.5, 2.5, 3, 2, 2.5, 3.5, 4, 4, 4.5, 5.5, 6, 5, 5.5, 6.5, 7]);
    tf.dispose([x, y]);
  });

  it('has gradient 4 for every input pixel of sum(output), also for non-square inputs', () => {
    // Along one axis each source pixel's weights over the outputs sum to 2 (e.g. 1 + .75 + .25), so 2·2 = 4 in 2D.
    const layer = new BilinearUpsampling2D();
    const x = tf.randomNormal([2, 3, 2, 3]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(layer.apply(t) as tf.Tensor))(x);
    expect(g.shape).toEqual([2, 3, 2, 3]);
    Array.from(g.dataSync()).forEach((v) => expect(v).toBeCloseTo(4, 6));
    tf.dispose([x, g]);
  });
});
