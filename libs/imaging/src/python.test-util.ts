/**
 * Test oracle: runs Debian's python3 (numpy, scipy, nibabel) and parses the JSON it
 * prints. Tests only; the product is Python-free. CI installs python3-nibabel.
 */
import { execFileSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';

/** Runs `script` with `args` (sys.argv[1:]) and returns its stdout parsed as JSON. */
export function runPythonJson<T>(script: string, args: readonly string[] = []): T {
  const out = execFileSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return JSON.parse(out) as T;
}

/** Directory of nibabel's test data (anatomical.nii, example4d.nii.gz). */
export function nibabelDataDir(): string {
  return runPythonJson<string>('import nibabel, os, json; print(json.dumps(os.path.join(os.path.dirname(nibabel.__file__), "tests", "data")))');
}
