import * as tf from '@tensorflow/tfjs';
import { Backend, BackendUnavailableError, selectBackend, type PackageLoader } from './backend';

function missing(pkg: string): never {
  throw Object.assign(new Error(`Cannot find module '${pkg}'`), { code: 'MODULE_NOT_FOUND' });
}

/** A loader where only the listed packages exist (and load for real). */
function only(...present: string[]): PackageLoader {
  return (pkg) => {
    if (!present.includes(pkg)) missing(pkg);
    require(pkg);
  };
}

function installed(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

describe('selectBackend', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('skips absent native packages and lands on wasm', async () => {
    const choice = await selectBackend('auto', only('@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-cpu'));
    expect(choice.backend).toBe(Backend.Wasm);
    expect(tf.getBackend()).toBe('wasm');
    expect(choice.skipped).toEqual([
      { backend: 'tensorflow-gpu', reason: '@tensorflow/tfjs-node-gpu is not installed (optional dependency)' },
      { backend: 'tensorflow', reason: '@tensorflow/tfjs-node is not installed (optional dependency)' },
    ]);
  });

  it('falls back to cpu when wasm cannot load either', async () => {
    const choice = await selectBackend('auto', only('@tensorflow/tfjs-backend-cpu'));
    expect(choice.backend).toBe(Backend.Cpu);
    expect(tf.getBackend()).toBe('cpu');
    expect(choice.skipped.map((s) => s.backend)).toEqual(['tensorflow-gpu', 'tensorflow', 'wasm']);
  });

  it('refuses an explicitly requested backend that is absent, naming the package', async () => {
    await expect(selectBackend(Backend.Tensorflow, only())).rejects.toThrow(
      new BackendUnavailableError("TensorFlow.js backend 'tensorflow' is unavailable: tensorflow: @tensorflow/tfjs-node is not installed (optional dependency)"),
    );
  });

  it('with the real installed packages, picks the first preferred one that is installed', async () => {
    const expected = installed('@tensorflow/tfjs-node-gpu') ? 'tensorflow-gpu' : installed('@tensorflow/tfjs-node') ? 'tensorflow' : 'wasm';
    const choice = await selectBackend();
    expect(choice.backend).toBe(expected);
  });
});
