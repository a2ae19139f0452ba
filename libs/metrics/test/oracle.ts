import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** Debian's python3 with numpy and scipy (`python3-scipy`); the product itself never runs Python. */
export const PYTHON = process.env['PURIFY_TEST_PYTHON'] ?? '/usr/bin/python3';
const SCRIPT = path.join(__dirname, 'scipy_oracle.py');

/** Sends one JSON request to test/scipy_oracle.py and returns its `results`. */
export function runOracle<T>(request: { op: 'edt' | 'metrics'; cases: readonly object[] }): T[] {
  const run = spawnSync(PYTHON, [SCRIPT], {
    input: JSON.stringify(request),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (run.error) throw run.error;
  if (run.status !== 0) throw new Error(`scipy oracle exited with ${run.status}: ${run.stderr}`);
  return (JSON.parse(run.stdout) as { results: T[] }).results;
}
