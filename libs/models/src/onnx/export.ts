import * as tf from '@tensorflow/tfjs';
import { OnnxExportError } from '../errors';
import type { SegModel } from '../seg-model';
import { OnnxGraphBuilder, type Attr } from './graph';

/** ONNX operator set of exported models (onnxruntime ≥ 1.13 runs it). */
export const ONNX_OPSET = 17;
/** ONNX IR version of exported models (IR 8 = ONNX 1.10+, the schema onnx-proto 8 compiles). */
export const ONNX_IR_VERSION = 8;
/** Graph input: float32 images `[N, C, H, W]` (NCHW), N/H/W dynamic. */
export const ONNX_INPUT_NAME = 'image';
/** Graph output: float32 class probabilities `[N, K, H, W]` (NCHW, softmax over K). */
export const ONNX_OUTPUT_NAME = 'probabilities';

export interface OnnxExportOptions {
  /**
   * Fold each BatchNormalization into the convolution before it (default true):
   * `W' = W·γ/√(σ²+ε)`, `b' = (b − μ)·γ/√(σ²+ε) + β`, per output channel.
   * With false, BatchNormalization nodes are emitted instead.
   */
  readonly foldBatchNorm?: boolean;
  /** Extra `metadata_props` entries. */
  readonly metadata?: Readonly<Record<string, string>>;
}

type Layer = tf.layers.Layer;

interface LayerWeights {
  readonly [suffix: string]: { shape: number[]; values: Float32Array } | undefined;
}

/** A layer's weights by name suffix (`kernel`, `bias`, `gamma`, …), copied from the backend. */
function weightsOf(layer: Layer): LayerWeights {
  const out: Record<string, { shape: number[]; values: Float32Array }> = {};
  for (const w of layer.weights) {
    const suffix = w.originalName.slice(w.originalName.lastIndexOf('/') + 1);
    const t = w.read();
    out[suffix] = { shape: [...t.shape], values: new Float32Array(t.dataSync()) };
  }
  return out;
}

function need(layer: Layer, w: LayerWeights, suffix: string): { shape: number[]; values: Float32Array } {
  const v = w[suffix];
  if (v === undefined) throw new OnnxExportError(`layer '${layer.name}' (${layer.getClassName()}) has no '${suffix}' weight`);
  return v;
}

/** `[kh, kw, a, b]` (tfjs) → `[b, a, kh, kw]` (ONNX). Conv: a=in, b=out → `[out, in, kh, kw]`; ConvTranspose: a=out, b=in → `[in, out, kh, kw]`. */
function kernelToOnnx(k: { shape: number[]; values: Float32Array }): { dims: number[]; values: Float32Array } {
  const [kh, kw, a, b] = k.shape as [number, number, number, number];
  const out = new Float32Array(k.values.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < a; i++)
        for (let o = 0; o < b; o++) out[((o * a + i) * kh + y) * kw + x] = k.values[((y * kw + x) * a + i) * b + o]!;
  return { dims: [b, a, kh, kw], values: out };
}

function pair(layer: Layer, field: string, v: unknown): [number, number] {
  const a = Array.isArray(v) ? (v as number[]) : [v as number, v as number];
  if (a.length !== 2 || !a.every((x) => Number.isInteger(x) && x > 0)) throw new OnnxExportError(`layer '${layer.name}': ${field} must be two positive integers, got ${JSON.stringify(v)}`);
  return [a[0]!, a[1]!];
}

function checkChannelsLast(layer: Layer, cfg: tf.serialization.ConfigDict): void {
  if (cfg['dataFormat'] !== undefined && cfg['dataFormat'] !== 'channelsLast') {
    throw new OnnxExportError(`layer '${layer.name}': only channelsLast (NHWC) layers are exported, got dataFormat ${JSON.stringify(cfg['dataFormat'])}`);
  }
}

/** The single node that feeds `layer` (layers applied more than once are not supported). */
function inboundLayers(layer: Layer): Layer[] {
  if (layer.inboundNodes.length !== 1) {
    throw new OnnxExportError(`layer '${layer.name}' is applied ${layer.inboundNodes.length} times; shared layers are not supported`);
  }
  return layer.inboundNodes[0]!.inboundLayers;
}

/** Layers that consume `layer`'s output. */
function consumers(layer: Layer): Layer[] {
  return layer.outboundNodes.map((n) => n.outboundLayer);
}

function activationName(layer: Layer, cfg: tf.serialization.ConfigDict): string {
  const a = cfg['activation'];
  return typeof a === 'string' ? a : 'linear';
}

/**
 * Converts a channels-last tfjs functional model of image-to-image layers to
 * ONNX. The ONNX graph works in NCHW throughout: its input is `[N, C, H, W]`
 * and its output `[N, K, H, W]`, so kernels are transposed at export and no
 * Transpose nodes are needed. Supported layers: InputLayer, Conv2D (activation
 * linear/relu), Conv2DTranspose (kernel ≥ stride, padding same/valid),
 * BatchNormalization (channel axis), our InstanceNormalization, ReLU,
 * Activation (linear/relu/softmax), MaxPooling2D, UpSampling2D
 * (nearest/bilinear, TF "asymmetric" coordinates), our BilinearUpsampling2D
 * (half-pixel), Concatenate (channel axis), Softmax (channel axis),
 * dropout layers (identity at inference, dropped).
 * @param stripPrefix removed from layer names to form node and tensor names.
 */
export function exportLayersModel(net: tf.LayersModel, options: OnnxExportOptions & { stripPrefix?: string; docString?: string } = {}): Uint8Array {
  const fold = options.foldBatchNorm ?? true;
  const prefix = options.stripPrefix ?? '';
  const short = (layer: Layer): string => (layer.name.startsWith(prefix) ? layer.name.slice(prefix.length) : layer.name);
  if (net.inputs.length !== 1 || net.outputs.length !== 1) {
    throw new OnnxExportError(`model '${net.name}' must have one input and one output, got ${net.inputs.length} and ${net.outputs.length}`);
  }
  const g = new OnnxGraphBuilder();
  /** ONNX tensor holding each exported layer's output. */
  const tensorOf = new Map<Layer, string>();
  const input = (layer: Layer, i = 0): string => {
    const src = inboundLayers(layer)[i];
    const name = src === undefined ? undefined : tensorOf.get(src);
    if (name === undefined) throw new OnnxExportError(`layer '${layer.name}': input ${i} was not exported before it`);
    return name;
  };
  let inputChannels = 0;
  const folded = new Set<Layer>();

  for (const layer of net.layers) {
    if (folded.has(layer)) continue;
    const cls = layer.getClassName();
    const cfg = layer.getConfig();
    const name = short(layer);
    checkChannelsLast(layer, cfg);
    switch (cls) {
      case 'InputLayer': {
        const shape = layer.batchInputShape ?? [];
        const c = shape[3];
        if (shape.length !== 4 || typeof c !== 'number') throw new OnnxExportError(`input '${layer.name}' must be [N, H, W, C] with known C, got [${shape.join(', ')}]`);
        inputChannels = c;
        tensorOf.set(layer, ONNX_INPUT_NAME);
        break;
      }
      case 'Conv2D':
      case 'Conv2DTranspose': {
        const transposed = cls === 'Conv2DTranspose';
        const w = weightsOf(layer);
        const kernel = need(layer, w, 'kernel');
        const [kh, kw] = pair(layer, 'kernelSize', cfg['kernelSize']);
        const [sh, sw] = pair(layer, 'strides', cfg['strides']);
        const [dh, dw] = pair(layer, 'dilationRate', cfg['dilationRate'] ?? 1);
        const outChannels = kernel.shape[transposed ? 2 : 3]!;
        const onnxKernel = kernelToOnnx(kernel);
        const dims = onnxKernel.dims;
        let values = onnxKernel.values;
        let bias = w['bias']?.values ?? new Float32Array(outChannels);
        const act = activationName(layer, cfg);
        if (act !== 'linear' && act !== 'relu') throw new OnnxExportError(`layer '${layer.name}': activation '${act}' is not supported (linear, relu)`);
        let outName = name;
        // Fold a following BatchNormalization into the kernel and bias.
        const next = consumers(layer);
        const bn = next.length === 1 && next[0]!.getClassName() === 'BatchNormalization' ? next[0]! : undefined;
        if (fold && bn !== undefined && act === 'linear') {
          const bw = weightsOf(bn);
          const eps = Number(bn.getConfig()['epsilon']);
          const mean = need(bn, bw, 'moving_mean').values;
          const variance = need(bn, bw, 'moving_variance').values;
          const gamma = bw['gamma']?.values;
          const beta = bw['beta']?.values;
          const perOut = values.length / outChannels; // ONNX layout: Conv [out, in, kh, kw]; ConvTranspose [in, out, kh, kw]
          const scale = Float64Array.from(variance, (v, c) => (gamma?.[c] ?? 1) / Math.sqrt(v + eps));
          values = values.map((v, idx) => {
            const c = transposed ? Math.floor(idx / (kh * kw)) % outChannels : Math.floor(idx / perOut);
            return v * scale[c]!;
          });
          bias = bias.map((b, c) => (b - mean[c]!) * scale[c]! + (beta?.[c] ?? 0));
          folded.add(bn);
          outName = short(bn);
          tensorOf.set(bn, outName);
        }
        const padding = cfg['padding'];
        const attrs: Record<string, Attr> = { kernel_shape: { ints: [kh, kw] }, strides: { ints: [sh, sw] }, dilations: { ints: [dh, dw] } };
        if (transposed) {
          if (dh !== 1 || dw !== 1) throw new OnnxExportError(`layer '${layer.name}': dilated transposed convolutions are not supported`);
          if (padding === 'same') {
            if (kh < sh || kw < sw) throw new OnnxExportError(`layer '${layer.name}': padding 'same' needs kernel ≥ stride, got kernel [${kh}, ${kw}] stride [${sh}, ${sw}]`);
            // TF 'same' transposed conv: output = input·stride, total crop k − s with the smaller half at the start.
            const [ph, pw] = [kh - sh, kw - sw];
            attrs['pads'] = { ints: [Math.floor(ph / 2), Math.floor(pw / 2), ph - Math.floor(ph / 2), pw - Math.floor(pw / 2)] };
          } else if (padding !== 'valid') {
            throw new OnnxExportError(`layer '${layer.name}': padding ${JSON.stringify(padding)} is not supported`);
          }
        } else if (padding === 'same') {
          if (sh === 1 && sw === 1) {
            const [th, tw] = [(kh - 1) * dh, (kw - 1) * dw];
            attrs['pads'] = { ints: [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)] };
          } else {
            attrs['auto_pad'] = { string: 'SAME_UPPER' };
          }
        } else if (padding !== 'valid') {
          throw new OnnxExportError(`layer '${layer.name}': padding ${JSON.stringify(padding)} is not supported`);
        }
        const wName = g.addInitializer(`${name}.weight`, dims, values);
        const bName = g.addInitializer(`${name}.bias`, [outChannels], bias);
        const convOut = act === 'relu' ? `${outName}.preact` : outName;
        g.addNode(transposed ? 'ConvTranspose' : 'Conv', name, [input(layer), wName, bName], [convOut], attrs);
        if (act === 'relu') g.addNode('Relu', `${outName}.relu`, [convOut], [outName]);
        tensorOf.set(layer, outName);
        break;
      }
      case 'BatchNormalization': {
        const axis = Number(cfg['axis']);
        if (axis !== -1 && axis !== 3) throw new OnnxExportError(`layer '${layer.name}': only channel-axis batch norm is supported, got axis ${axis}`);
        const w = weightsOf(layer);
        const mean = need(layer, w, 'moving_mean');
        const c = mean.shape[0]!;
        const gamma = w['gamma']?.values ?? new Float32Array(c).fill(1);
        const beta = w['beta']?.values ?? new Float32Array(c);
        g.addNode(
          'BatchNormalization',
          name,
          [
            input(layer),
            g.addInitializer(`${name}.scale`, [c], gamma),
            g.addInitializer(`${name}.bias`, [c], beta),
            g.addInitializer(`${name}.mean`, [c], mean.values),
            g.addInitializer(`${name}.var`, [c], need(layer, w, 'moving_variance').values),
          ],
          [name],
          { epsilon: { float: Number(cfg['epsilon']) } },
        );
        tensorOf.set(layer, name);
        break;
      }
      case 'PurifyInstanceNormalization': {
        const w = weightsOf(layer);
        const gamma = need(layer, w, 'gamma');
        const c = gamma.shape[0]!;
        g.addNode(
          'InstanceNormalization',
          name,
          [input(layer), g.addInitializer(`${name}.scale`, [c], gamma.values), g.addInitializer(`${name}.bias`, [c], need(layer, w, 'beta').values)],
          [name],
          { epsilon: { float: Number(cfg['epsilon']) } },
        );
        tensorOf.set(layer, name);
        break;
      }
      case 'ReLU': {
        if (cfg['maxValue'] != null) throw new OnnxExportError(`layer '${layer.name}': ReLU with maxValue is not supported`);
        g.addNode('Relu', name, [input(layer)], [name]);
        tensorOf.set(layer, name);
        break;
      }
      case 'Activation': {
        const act = activationName(layer, cfg);
        if (act === 'linear') tensorOf.set(layer, input(layer));
        else if (act === 'relu') g.addNode('Relu', name, [input(layer)], [name]);
        else if (act === 'softmax') g.addNode('Softmax', name, [input(layer)], [name], { axis: { int: 1 } });
        else throw new OnnxExportError(`layer '${layer.name}': activation '${act}' is not supported (linear, relu, softmax)`);
        if (act !== 'linear') tensorOf.set(layer, name);
        break;
      }
      case 'Softmax': {
        const axis = cfg['axis'];
        if (axis !== -1 && axis !== 3 && !(Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3))) {
          throw new OnnxExportError(`layer '${layer.name}': only a softmax over channels is supported, got axis ${JSON.stringify(axis)}`);
        }
        g.addNode('Softmax', name, [input(layer)], [name], { axis: { int: 1 } });
        tensorOf.set(layer, name);
        break;
      }
      case 'MaxPooling2D': {
        const [ph, pw] = pair(layer, 'poolSize', cfg['poolSize']);
        const [sh, sw] = pair(layer, 'strides', cfg['strides'] ?? cfg['poolSize']);
        const attrs: Record<string, Attr> = { kernel_shape: { ints: [ph, pw] }, strides: { ints: [sh, sw] } };
        if (cfg['padding'] === 'same') attrs['auto_pad'] = { string: 'SAME_UPPER' };
        else if (cfg['padding'] !== 'valid') throw new OnnxExportError(`layer '${layer.name}': padding ${JSON.stringify(cfg['padding'])} is not supported`);
        g.addNode('MaxPool', name, [input(layer)], [name], attrs);
        tensorOf.set(layer, name);
        break;
      }
      case 'UpSampling2D': {
        const [fh, fw] = pair(layer, 'size', cfg['size']);
        const interpolation = cfg['interpolation'] ?? 'nearest';
        // tf.image.resize* with alignCorners = halfPixelCenters = false: source = target / scale ("asymmetric");
        // nearest takes floor(source), i.e. repeats each pixel.
        const attrs: Record<string, Attr> =
          interpolation === 'nearest'
            ? { mode: { string: 'nearest' }, coordinate_transformation_mode: { string: 'asymmetric' }, nearest_mode: { string: 'floor' } }
            : interpolation === 'bilinear'
              ? { mode: { string: 'linear' }, coordinate_transformation_mode: { string: 'asymmetric' } }
              : (() => {
                  throw new OnnxExportError(`layer '${layer.name}': interpolation ${JSON.stringify(interpolation)} is not supported`);
                })();
        const scales = g.addInitializer(`${name}.scales`, [4], Float32Array.of(1, 1, fh, fw));
        g.addNode('Resize', name, [input(layer), '', scales], [name], attrs);
        tensorOf.set(layer, name);
        break;
      }
      case 'PurifyBilinearUpsampling2D': {
        const scales = g.addInitializer(`${name}.scales`, [4], Float32Array.of(1, 1, 2, 2));
        g.addNode('Resize', name, [input(layer), '', scales], [name], { mode: { string: 'linear' }, coordinate_transformation_mode: { string: 'half_pixel' } });
        tensorOf.set(layer, name);
        break;
      }
      case 'Concatenate': {
        const axis = Number(cfg['axis']);
        if (axis !== -1 && axis !== 3) throw new OnnxExportError(`layer '${layer.name}': only channel concatenation is supported, got axis ${axis}`);
        g.addNode('Concat', name, inboundLayers(layer).map((_, i) => input(layer, i)), [name], { axis: { int: 1 } });
        tensorOf.set(layer, name);
        break;
      }
      case 'Dropout':
      case 'SpatialDropout1D':
      case 'PurifySeededDropout':
        tensorOf.set(layer, input(layer)); // identity at inference
        break;
      default:
        throw new OnnxExportError(`layer '${layer.name}' of class ${cls} has no ONNX export`);
    }
  }

  const outLayer = net.outputs[0]!.sourceLayer;
  const finalTensor = tensorOf.get(outLayer);
  const classes = net.outputs[0]!.shape[3];
  if (finalTensor === undefined || typeof classes !== 'number') throw new OnnxExportError(`output layer '${outLayer.name}' was not exported or has unknown channels`);
  if (g.produces(finalTensor)) g.renameTensor(finalTensor, ONNX_OUTPUT_NAME);
  else g.addNode('Identity', 'output', [finalTensor], [ONNX_OUTPUT_NAME]);

  return g.encode({
    graphName: net.name,
    inputs: [{ name: ONNX_INPUT_NAME, dims: ['N', inputChannels, 'H', 'W'], doc: 'float32 images, NCHW' }],
    outputs: [{ name: ONNX_OUTPUT_NAME, dims: ['N', classes, 'H', 'W'], doc: 'float32 class probabilities, NCHW, softmax over axis 1' }],
    irVersion: ONNX_IR_VERSION,
    opsetVersion: ONNX_OPSET,
    producerName: 'purify',
    producerVersion: '0.1.0',
    ...(options.docString === undefined ? {} : { docString: options.docString }),
    metadata: { 'purify.layout': 'NCHW', ...(options.metadata ?? {}) },
  });
}

/**
 * Exports a {@link SegModel} to an ONNX model (opset {@link ONNX_OPSET}, IR
 * {@link ONNX_IR_VERSION}): input `image` float32 `[N, C, H, W]`, output
 * `probabilities` float32 `[N, K, H, W]` (N, H, W dynamic; H and W must be
 * multiples of 2^(depth−1)). Dropout is dropped; BatchNorm is folded into the
 * preceding convolution unless `foldBatchNorm` is false. The U-Net config is
 * stored in the metadata (`purify.unet_config`, JSON).
 */
export function exportOnnx(model: SegModel, options: OnnxExportOptions = {}): Uint8Array {
  if (model.isDisposed) throw new OnnxExportError(`model '${model.namePrefix}' has been disposed`);
  return exportLayersModel(model.networks.probabilities, {
    ...options,
    stripPrefix: model.namePrefix,
    docString: `purify 2D U-Net: image [N, ${model.config.inputChannels}, H, W] → probabilities [N, ${model.config.numClasses}, H, W]; H, W multiples of ${model.sizeMultiple}`,
    metadata: {
      'purify.unet_config': JSON.stringify(model.config),
      'purify.num_classes': String(model.config.numClasses),
      'purify.size_multiple': String(model.sizeMultiple),
      ...(options.metadata ?? {}),
    },
  });
}
