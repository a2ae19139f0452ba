import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { nativeAddon } from './native';
import { registerWasmTrainingKernels } from './register';

/**
 * Shared helpers for the kernel specs: run the same computation on the cpu
 * backend (the reference) and on wasm (our kernels), and compare.
 */

/** Deterministic standard-normal values for `shape` (mulberry32 + Box–Muller; plain data, no backend needed). */
export function seeded(shape: readonly number[], seed: number): Float32Array {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float32Array(shape.reduce((p, d) => p * d, 1));
  for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

/** Deterministic one-hot labels `[...shape, classes]` (class of each pixel from {@link seeded}). */
export function seededOneHot(shape: readonly number[], classes: number, seed: number): Float32Array {
  const z = seeded(shape, seed);
  const out = new Float32Array(z.length * classes);
  z.forEach((v, i) => {
    out[i * classes + (Math.floor(Math.abs(v) * 1000) % classes)] = 1;
  });
  return out;
}

/** Runs `f` on `backend` and returns every output's values (tensors are disposed). */
export async function runOn(backend: 'cpu' | 'wasm', f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  await tf.ready();
  const outs = f();
  try {
    return outs.map((t) => t.dataSync() as Float32Array);
  } finally {
    tf.dispose(outs);
  }
}

/** max |a - b| / max |b| (b the reference); 0 when both are all zeros. */
export function relativeError(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`relativeError: lengths differ (${a.length} vs ${b.length})`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return scale === 0 ? diff : diff / scale;
}

/** Number of data buffers the wasm backend holds (catches intermediates a kernel forgot to release). */
export function wasmDataIds(): number {
  return tf.findBackend('wasm')?.numDataIds() ?? 0;
}

/**
 * The kernel variants a spec runs for: the pure wasm kernels always, the
 * native ones where the addon is built. Without the addon the native variant
 * is left out, unless PURIFY_NATIVE_KERNELS=require (CI builds the addon and
 * sets it): then loading it throws and the suite fails.
 */
export const KERNEL_VARIANTS: readonly ('wasm' | 'native')[] = nativeAddon().status.loaded ? ['wasm', 'native'] : ['wasm'];

/**
 * Installs `beforeAll` / `afterAll` hooks in the current `describe`: the wasm
 * backend active with our kernels registered (`native` chooses the variant,
 * checked to be the one in use), the previous backend restored afterwards.
 */
export function useWasmKernels(native: boolean): void {
  let original: string;
  beforeAll(async () => {
    await tf.ready();
    original = tf.getBackend();
    await tf.setBackend('wasm');
    await tf.ready();
    const status = registerWasmTrainingKernels({ native });
    expect(status.loaded).toBe(native);
  });
  afterAll(async () => {
    await tf.setBackend(original);
  });
}

/** `describe`s `body` once per {@link KERNEL_VARIANTS} entry, with that variant's kernels in use ({@link useWasmKernels}). */
export function describeKernelVariants(body: (variant: 'wasm' | 'native') => void): void {
  describe.each(KERNEL_VARIANTS)('%s kernels', (variant) => {
    useWasmKernels(variant === 'native');
    body(variant);
  });
}
