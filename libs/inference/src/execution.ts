/**
 * onnxruntime-node sessions: options from configuration and the choice of
 * execution provider (CUDA when onnxruntime-node can use it, CPU otherwise).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';

export const GraphOptimization = { Disabled: 'disabled', Basic: 'basic', Extended: 'extended', All: 'all' } as const;
export type GraphOptimization = (typeof GraphOptimization)[keyof typeof GraphOptimization];

/** Which execution provider to use: `auto` = CUDA when available, else CPU. */
export const ProviderPreference = { Auto: 'auto', Cpu: 'cpu', Cuda: 'cuda' } as const;
export type ProviderPreference = (typeof ProviderPreference)[keyof typeof ProviderPreference];

export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionConfig {
  /** Threads inside one operator; 0 = onnxruntime's default (one per physical core). */
  readonly intraOpThreads: number;
  /** Threads across independent operators; 0 = onnxruntime's default. */
  readonly interOpThreads: number;
  readonly graphOptimization: GraphOptimization;
  readonly executionProvider: ProviderPreference;
}

export const DEFAULT_SESSION_CONFIG: SessionConfig = Object.freeze({
  intraOpThreads: 0,
  interOpThreads: 0,
  graphOptimization: GraphOptimization.All,
  executionProvider: ProviderPreference.Auto,
});

/** What this process can run models on, and why CUDA is not used when it is not. */
export interface ProviderAvailability {
  /** Providers usable here, best first. */
  readonly available: readonly ExecutionProvider[];
  /** Why CUDA is unavailable (undefined when it is available). */
  readonly cudaUnavailableReason: string | undefined;
  readonly onnxruntimeVersion: string;
}

/** Folder holding onnxruntime-node's native binding for this platform. */
function bindingDir(): string {
  return join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
}

let availability: ProviderAvailability | undefined;

/**
 * Probes onnxruntime-node once: CUDA counts as available when the binding lists
 * it AND its provider library is installed next to the binding (the npm package
 * ships only the CPU binaries, and package.json "allowScripts" denies the install
 * script that would download the CUDA ones).
 * Whether a GPU is actually usable is only known when a session is created; a
 * failure there falls back to CPU (see {@link createSession}).
 */
export function providerAvailability(): ProviderAvailability {
  if (availability) return availability;
  const backends = ort.listSupportedBackends();
  const cudaListed = backends.some((b) => b.name === 'cuda');
  const cudaLib = join(bindingDir(), 'libonnxruntime_providers_cuda.so');
  let cudaUnavailableReason: string | undefined;
  if (!cudaListed) cudaUnavailableReason = `this onnxruntime-node build (${process.platform}/${process.arch}) has no CUDA provider`;
  else if (!existsSync(cudaLib)) cudaUnavailableReason = `the CUDA provider library is not installed (${cudaLib}; install onnxruntime-node with its CUDA binaries)`;
  availability = {
    available: cudaUnavailableReason === undefined ? ['cuda', 'cpu'] : ['cpu'],
    cudaUnavailableReason,
    onnxruntimeVersion: ort.env.versions.common ?? 'unknown',
  };
  return availability;
}

export interface CreatedSession {
  readonly session: ort.InferenceSession;
  readonly provider: ExecutionProvider;
  /** Why a preferred provider was not used (e.g. CUDA failed to initialise). */
  readonly fallbackReason: string | undefined;
}

function sessionOptions(config: SessionConfig, providers: readonly ExecutionProvider[]): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [...providers],
    graphOptimizationLevel: config.graphOptimization,
    ...(config.intraOpThreads > 0 ? { intraOpNumThreads: config.intraOpThreads } : {}),
    ...(config.interOpThreads > 0 ? { interOpNumThreads: config.interOpThreads } : {}),
  };
}

/**
 * Creates a session for an ONNX model held in memory. With `auto`, CUDA is tried
 * when {@link providerAvailability} says so and CPU is used if that fails; with
 * `cuda` a missing CUDA provider is an error; with `cpu` CUDA is never tried.
 * Errors from onnxruntime (a corrupt model) propagate unchanged.
 */
export async function createSession(onnx: Uint8Array, config: SessionConfig): Promise<CreatedSession> {
  const avail = providerAvailability();
  const wantCuda = config.executionProvider !== ProviderPreference.Cpu;
  if (wantCuda && avail.cudaUnavailableReason === undefined) {
    try {
      const session = await ort.InferenceSession.create(onnx, sessionOptions(config, ['cuda', 'cpu']));
      return { session, provider: 'cuda', fallbackReason: undefined };
    } catch (err) {
      if (config.executionProvider === ProviderPreference.Cuda) throw err;
      const session = await ort.InferenceSession.create(onnx, sessionOptions(config, ['cpu']));
      return { session, provider: 'cpu', fallbackReason: `CUDA session failed: ${(err as Error).message}` };
    }
  }
  if (config.executionProvider === ProviderPreference.Cuda) {
    throw new Error(`the CUDA execution provider was requested but ${avail.cudaUnavailableReason ?? 'is unavailable'}`);
  }
  const session = await ort.InferenceSession.create(onnx, sessionOptions(config, ['cpu']));
  return { session, provider: 'cpu', fallbackReason: wantCuda ? avail.cudaUnavailableReason : undefined };
}
