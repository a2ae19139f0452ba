import * as tf from '@tensorflow/tfjs';

/**
 * TensorFlow.js backend selection. Preference: the native CUDA build, the
 * native CPU build, WebAssembly (XNNPACK), then the pure-JS reference backend.
 * The native packages (`@tensorflow/tfjs-node-gpu`, `@tensorflow/tfjs-node`) are
 * optional dependencies: their install downloads libtensorflow, which fails on
 * machines without general internet, so each may simply be absent.
 */
export const Backend = {
  TensorflowGpu: 'tensorflow-gpu',
  Tensorflow: 'tensorflow',
  Wasm: 'wasm',
  Cpu: 'cpu',
} as const;
export type Backend = (typeof Backend)[keyof typeof Backend];

export const BACKEND_PREFERENCE: readonly Backend[] = [Backend.TensorflowGpu, Backend.Tensorflow, Backend.Wasm, Backend.Cpu];

/** The npm package that provides each backend, and the tfjs backend name it registers. */
const PROVIDERS: Readonly<Record<Backend, { pkg: string; tfjsName: string }>> = {
  'tensorflow-gpu': { pkg: '@tensorflow/tfjs-node-gpu', tfjsName: 'tensorflow' },
  tensorflow: { pkg: '@tensorflow/tfjs-node', tfjsName: 'tensorflow' },
  wasm: { pkg: '@tensorflow/tfjs-backend-wasm', tfjsName: 'wasm' },
  cpu: { pkg: '@tensorflow/tfjs-backend-cpu', tfjsName: 'cpu' },
};

export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
}

export interface BackendChoice {
  readonly backend: Backend;
  /** Name tfjs knows it by (`tf.getBackend()`). */
  readonly tfjsName: string;
  /** Backends tried before it, with why each was skipped. */
  readonly skipped: readonly { backend: Backend; reason: string }[];
}

/** Loads a backend's package (injectable for tests); throws when it is missing or broken. */
export type PackageLoader = (pkg: string) => void;

const requirePackage: PackageLoader = (pkg) => {
  // A dynamic require on purpose: the package may be absent, and loading it is what registers the backend.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require(pkg);
};

function reasonOf(err: unknown, pkg: string): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'MODULE_NOT_FOUND') return `${pkg} is not installed (optional dependency)`;
  return `${pkg} failed to load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
}

/**
 * Activates `requested` (or, for 'auto', the first backend in
 * {@link BACKEND_PREFERENCE} that loads and initialises) and reports the choice.
 * An explicitly requested backend that cannot be used is an error, never a
 * silent fallback.
 */
export async function selectBackend(requested: Backend | 'auto' = 'auto', load: PackageLoader = requirePackage): Promise<BackendChoice> {
  const candidates = requested === 'auto' ? BACKEND_PREFERENCE : [requested];
  const skipped: { backend: Backend; reason: string }[] = [];
  for (const backend of candidates) {
    const { pkg, tfjsName } = PROVIDERS[backend];
    try {
      load(pkg);
      if (!(await tf.setBackend(tfjsName))) throw new Error(`tf.setBackend('${tfjsName}') returned false`);
      await tf.ready();
      return { backend, tfjsName, skipped };
    } catch (err) {
      skipped.push({ backend, reason: reasonOf(err, pkg) });
    }
  }
  const detail = skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ');
  throw new BackendUnavailableError(
    requested === 'auto' ? `no TensorFlow.js backend could be initialised (${detail})` : `TensorFlow.js backend '${requested}' is unavailable: ${detail}`,
  );
}

export function isBackend(value: string): value is Backend {
  return (BACKEND_PREFERENCE as readonly string[]).includes(value);
}
