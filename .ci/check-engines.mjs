// Checks that package.json "engines.node" tells the truth about the locked
// dependency tree: every Node version it admits must be admitted by every package
// in package-lock.json that declares engines.node, and .nvmrc must name a version
// inside it. engine-strict (.npmrc) only tests the Node that runs `npm ci`; this
// catches a dependency bump that drops, say, Node 20.19 while CI runs 20.20.
// Prints one line per offending package; exits 1 when there is any.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const semver = createRequire(join(root, 'package.json'))('semver');
const read = (file) => readFileSync(join(root, file), 'utf8');

const range = JSON.parse(read('package.json')).engines?.node;
if (!range || !semver.validRange(range)) {
  console.error(`package.json engines.node must be a semver range, got ${JSON.stringify(range)}`);
  process.exit(1);
}
const problems = [];
const nvmrc = read('.nvmrc').trim();
const nvmrcMin = semver.minVersion(nvmrc.replace(/^v/, ''));
if (!nvmrcMin || !semver.satisfies(nvmrcMin, range)) problems.push(`.nvmrc names ${nvmrc}, outside engines.node ${range}`);

const { packages } = JSON.parse(read('package-lock.json'));
let checked = 0;
for (const [path, entry] of Object.entries(packages)) {
  const needs = entry.engines?.node;
  if (!path || typeof needs !== 'string') continue;
  checked += 1;
  // An optional package that refuses a Node is skipped by npm there (it is then
  // simply absent, as when its install script fails); it is listed all the same.
  if (!semver.subset(range, needs)) problems.push(`${path}@${entry.version}${entry.optional ? ' (optional)' : ''} needs node ${needs}`);
}
for (const line of problems) console.error(line);
console.log(
  problems.length
    ? `engines.node ${range}: ${problems.length} problem(s) above`
    : `engines.node ${range}: admitted by all ${checked} locked packages that declare engines.node, and by .nvmrc (${nvmrc})`,
);
process.exitCode = problems.length ? 1 : 0;
