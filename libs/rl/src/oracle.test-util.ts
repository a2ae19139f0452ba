import { execFileSync } from 'node:child_process';

/**
 * Runs a Python 3 snippet with numpy/scipy (Debian's /usr/bin/python3) as an
 * independent oracle; the snippet prints one JSON value, which is returned.
 */
export function python<T>(script: string): T {
  const out = execFileSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8', timeout: 30_000 });
  return JSON.parse(out) as T;
}
