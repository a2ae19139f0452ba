#!/usr/bin/env node
// Builds the native convolution kernels (training_kernels.cc) into
// build/purify_kernels.node with the system C++ compiler and OpenBLAS.
//
//   node libs/models/native/build.mjs [--optional]
//
// Needs g++ (or $CXX) and libopenblas-dev (Debian: apt-get install g++
// libopenblas-dev pkg-config), plus Node's own headers, which ship with Node
// (<prefix>/include/node) — nothing is downloaded. `npm install` runs this with
// --optional: when the build is not possible it says why and exits 0, and
// training uses the (slower) wasm kernels. The output is written to a temporary
// file and renamed, so an interrupted build never leaves a broken addon.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// PURIFY_NATIVE_KERNELS=require (CI, the trainer image) turns a failed build into an error even with --optional.
const optional = process.argv.includes('--optional') && process.env.PURIFY_NATIVE_KERNELS !== 'require';
const source = join(here, 'training_kernels.cc');
const outDir = join(here, 'build');
const out = join(outDir, 'purify_kernels.node');

function fail(reason) {
  if (optional) {
    console.warn(`purify: native convolution kernels not built (${reason}); training uses the wasm kernels. See docs/kernels.md.`);
    process.exit(0);
  }
  console.error(`build.mjs: ${reason}`);
  process.exit(1);
}

if (process.env.PURIFY_NATIVE_KERNELS === 'off') fail('PURIFY_NATIVE_KERNELS=off');

const nodeInclude = [resolve(process.execPath, '..', '..', 'include', 'node'), process.config.variables?.node_prefix && join(process.config.variables.node_prefix, 'include', 'node')].find(
  (d) => d && existsSync(join(d, 'node_api.h')),
);
if (nodeInclude === undefined) fail(`Node's headers (node_api.h) were not found next to ${process.execPath}`);

/** OpenBLAS compile and link flags: pkg-config when present, else Debian's multiarch layout. */
function blasFlags() {
  try {
    return execFileSync('pkg-config', ['--cflags', '--libs', 'openblas'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/);
  } catch {
    let triplet = '';
    try {
      triplet = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      // no gcc: the compile below reports it
    }
    const inc = `/usr/include/${triplet}/openblas-pthread`;
    return existsSync(join(inc, 'cblas.h')) ? [`-I${inc}`, `-L/usr/lib/${triplet}/openblas-pthread`, '-lopenblas'] : ['-lopenblas'];
  }
}

const cxx = process.env.CXX || 'g++';
const tmp = `${out}.${process.pid}.tmp`;
const args = ['-O3', '-std=c++17', '-pthread', '-shared', '-fPIC', '-fvisibility=hidden', `-I${nodeInclude}`, source, '-o', tmp, ...blasFlags(), '-Wl,-z,nodelete'];
mkdirSync(outDir, { recursive: true });
try {
  execFileSync(cxx, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  renameSync(tmp, out);
} catch (err) {
  rmSync(tmp, { force: true });
  const why = err.code === 'ENOENT' ? `no C++ compiler '${cxx}'` : `'${cxx} ${args.join(' ')}' failed (is libopenblas-dev installed?)`;
  fail(why);
}
console.log(`purify: built ${out}`);
