/**
 * Test oracle: Debian's python3 with numpy/scipy, run from the test. Tests only;
 * the product is Python-free. CI installs python3-numpy and python3-scipy.
 */
import { execFileSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';

/** Runs `script` with `input` as JSON on stdin and returns its stdout parsed as JSON. */
export function runPythonJson<T>(script: string, input: unknown): T {
  const out = execFileSync(PYTHON, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(out) as T;
}

/** Deterministic pseudo-random numbers in [0, 1) (LCG), for test inputs. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Random probabilities float32 `[K, n]` (softmax of random logits scaled by `sharpness`). */
export function randomProbabilities(k: number, n: number, rand: () => number, sharpness = 4): Float32Array {
  const out = new Float32Array(k * n);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    const e: number[] = [];
    for (let c = 0; c < k; c++) {
      const v = Math.exp(sharpness * (rand() - 0.5) * 2);
      e.push(v);
      sum += v;
    }
    for (let c = 0; c < k; c++) out[c * n + i] = (e[c] as number) / sum;
  }
  return out;
}
