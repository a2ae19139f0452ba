import * as tf from '@tensorflow/tfjs';
import { levelWidth, Norm, resolveUNetConfig, Upsampling, type UNetConfig } from './config';
import { ModelConfigError } from './errors';
import { BilinearUpsampling2D, FusedBatchNormalization, InstanceNormalization, SeededDropout } from './layers';
import { Rng } from './rng';
import { claimPrefix, isPrefixLive, releasePrefix, SegModel } from './seg-model';

/** BatchNorm settings (PyTorch's defaults: running average keeps 90 % of the old value). */
export const BATCH_NORM_MOMENTUM = 0.9;
export const NORM_EPSILON = 1e-5;

const PREFIX_PATTERN = /^[A-Za-z0-9][-A-Za-z0-9._]*$/;
let prefixCounter = 0;

/** A fresh prefix `unet<k>_` not used by any live model. */
function uniquePrefix(): string {
  for (;;) {
    const p = `unet${++prefixCounter}_`;
    if (!isPrefixLive(p)) return p;
  }
}

export interface BuildOptions {
  /**
   * Prefix of every layer and variable name (tfjs variable names are global to
   * the process). Letters, digits, `-`, `.`, `_`, starting with a letter or
   * digit; default a fresh `unet<k>_`. Must not be used by a live model.
   */
  readonly namePrefix?: string;
}

/**
 * Builds a 2D U-Net (see {@link UNetConfig} for the architecture) with seeded
 * initialisation: He-normal 3×3 kernels, Glorot-uniform head, zero biases,
 * norm scale 1 / shift 0. Layer names are `<prefix>enc<l>_conv<i>`,
 * `…_bn<i>` / `…_in<i>`, `…_relu<i>`, `pool<l>`, `up<l>` (or `up<l>_resize` +
 * `up<l>_conv`), `dec<l>_concat`, `dec<l>_…`, `drop_enc<l>` / `drop_dec<l>`,
 * `head`, `softmax`.
 * @param partial options; omitted ones come from {@link REFERENCE_UNET}.
 */
export function buildUNet(partial: Partial<UNetConfig> = {}, options: BuildOptions = {}): SegModel {
  const config = resolveUNetConfig(partial);
  const prefix = options.namePrefix ?? uniquePrefix();
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new ModelConfigError(`namePrefix must match ${String(PREFIX_PATTERN)}, got ${JSON.stringify(prefix)}`);
  }
  claimPrefix(prefix);
  try {
    const initRng = new Rng(config.seed);
    // Dropout draws from its own stream so turning dropout on does not change the initial weights.
    const dropoutRng = new Rng((config.seed ^ 0x5eed5eed) >>> 0);
    const networks = buildNetworks(config, prefix, initRng, dropoutRng);
    return new SegModel(config, prefix, dropoutRng, networks);
  } catch (err) {
    releasePrefix(prefix);
    throw err;
  }
}

function buildNetworks(config: UNetConfig, p: string, initRng: Rng, dropoutRng: Rng): { probabilities: tf.LayersModel; logits: tf.LayersModel } {
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor => layer.apply(x) as tf.SymbolicTensor;
  const useBias = config.norm === Norm.None;
  const he = () => tf.initializers.heNormal({ seed: initRng.nextSeed() });

  const conv = (x: tf.SymbolicTensor, filters: number, kernelSize: number, name: string, bias: boolean): tf.SymbolicTensor =>
    apply(tf.layers.conv2d({ filters, kernelSize, padding: 'same', useBias: bias, kernelInitializer: he(), name: p + name }), x);

  const block = (x: tf.SymbolicTensor, filters: number, name: string): tf.SymbolicTensor => {
    for (let i = 1; i <= 2; i++) {
      x = conv(x, filters, 3, `${name}_conv${i}`, useBias);
      if (config.norm === Norm.Batch) {
        x = apply(new FusedBatchNormalization({ axis: -1, momentum: BATCH_NORM_MOMENTUM, epsilon: NORM_EPSILON, name: `${p}${name}_bn${i}` }), x);
      } else if (config.norm === Norm.Instance) {
        x = apply(new InstanceNormalization({ epsilon: NORM_EPSILON, name: `${p}${name}_in${i}` }), x);
      }
      x = apply(tf.layers.reLU({ name: `${p}${name}_relu${i}` }), x);
    }
    return x;
  };

  const dropout = (x: tf.SymbolicTensor, name: string): tf.SymbolicTensor =>
    config.dropout > 0 ? apply(new SeededDropout({ rate: config.dropout, seedSource: () => dropoutRng.nextSeed(), name: p + name }), x) : x;

  const input = tf.input({ shape: [null, null, config.inputChannels], name: `${p}image` }); // [N, H, W, C]
  const skips: tf.SymbolicTensor[] = [];
  let x = input;
  for (let l = 0; l < config.depth; l++) {
    x = block(x, levelWidth(config, l), `enc${l}`); // [N, H/2^l, W/2^l, width_l]
    if (l >= 1) x = dropout(x, `drop_enc${l}`);
    if (l < config.depth - 1) {
      skips.push(x);
      x = apply(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'valid', name: `${p}pool${l}` }), x);
    }
  }
  for (let l = config.depth - 2; l >= 0; l--) {
    const width = levelWidth(config, l);
    if (config.upsampling === Upsampling.Transposed) {
      x = apply(
        tf.layers.conv2dTranspose({ filters: width, kernelSize: 2, strides: 2, padding: 'same', kernelInitializer: he(), name: `${p}up${l}` }),
        x,
      );
    } else {
      const resize =
        config.upsampling === Upsampling.Bilinear
          ? new BilinearUpsampling2D({ name: `${p}up${l}_resize` })
          : tf.layers.upSampling2d({ size: [2, 2], interpolation: 'nearest', name: `${p}up${l}_resize` });
      x = apply(resize, x);
      x = conv(x, width, 3, `up${l}_conv`, true);
    } // [N, H/2^l, W/2^l, width_l]
    x = apply(tf.layers.concatenate({ axis: -1, name: `${p}dec${l}_concat` }), [skips[l]!, x]); // [.., 2·width_l]
    x = block(x, width, `dec${l}`);
    if (l >= 1) x = dropout(x, `drop_dec${l}`);
  }
  const logits = apply(
    tf.layers.conv2d({
      filters: config.numClasses,
      kernelSize: 1,
      useBias: true,
      kernelInitializer: tf.initializers.glorotUniform({ seed: initRng.nextSeed() }),
      name: `${p}head`,
    }),
    x,
  ); // [N, H, W, K]
  const probs = apply(tf.layers.softmax({ axis: -1, name: `${p}softmax` }), logits);
  return {
    probabilities: tf.model({ inputs: input, outputs: probs, name: `${p}unet` }),
    logits: tf.model({ inputs: input, outputs: logits, name: `${p}unet_logits` }),
  };
}
