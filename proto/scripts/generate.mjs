#!/usr/bin/env node
// Regenerates proto/src/gen from proto/purify/v1/*.proto with ts-proto.
//
//   node proto/scripts/generate.mjs          rewrite proto/src/gen from a clean folder
//   node proto/scripts/generate.mjs --check  regenerate into a temp folder and fail
//                                            (exit 1) if it differs from the committed one
//
// This is the only writer of proto/src/gen; nobody edits that folder by hand.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, renameSync, cpSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const protoDir = dirname(dirname(fileURLToPath(import.meta.url)));
const genDir = join(protoDir, 'src', 'gen');
const check = process.argv.includes('--check');

const TS_PROTO_OPTIONS = [
  'outputServices=grpc-js',
  'esModuleInterop=true',
  'env=node',
  'forceLong=number',
  'oneof=unions',
  'useDate=true',
  'exportCommonSymbols=false',
  'useOptionals=messages',
];

const protocBin = require.resolve('protoc/protoc.cjs');
const plugin = join(dirname(require.resolve('ts-proto/package.json')), 'protoc-gen-ts_proto');

function listFiles(dir, base = dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? listFiles(full, base) : [relative(base, full)];
  }).sort();
}

const sources = listFiles(join(protoDir, 'purify')).filter((f) => f.endsWith('.proto')).map((f) => join('purify', f));
const out = mkdtempSync(join(tmpdir(), 'purify-proto-'));
try {
  execFileSync(process.execPath, [
    protocBin,
    `--plugin=protoc-gen-ts_proto=${plugin}`,
    `--ts_proto_out=${out}`,
    `--ts_proto_opt=${TS_PROTO_OPTIONS.join(',')}`,
    `--proto_path=${protoDir}`,
    ...sources,
  ], { stdio: 'inherit', cwd: protoDir });

  if (check) {
    const fresh = listFiles(out);
    let committed = [];
    try { committed = listFiles(genDir); } catch { /* missing folder counts as drift */ }
    const drift = [];
    for (const f of new Set([...fresh, ...committed])) {
      const a = fresh.includes(f) ? readFileSync(join(out, f), 'utf8') : null;
      const b = committed.includes(f) ? readFileSync(join(genDir, f), 'utf8') : null;
      if (a !== b) drift.push(a === null ? `extra ${f}` : b === null ? `missing ${f}` : `differs ${f}`);
    }
    if (drift.length > 0) {
      console.error(`proto/src/gen is out of date with proto/purify (run \`npm run proto\`):\n  ${drift.join('\n  ')}`);
      process.exit(1);
    }
    console.log(`proto/src/gen is up to date (${fresh.length} files from ${sources.length} .proto files).`);
  } else {
    rmSync(genDir, { recursive: true, force: true });
    try {
      renameSync(out, genDir);
    } catch {
      cpSync(out, genDir, { recursive: true });
    }
    console.log(`wrote ${relative(process.cwd(), genDir)} from ${sources.length} .proto files`);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
