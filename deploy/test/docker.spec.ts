// The service images, checked without a Docker engine: what every Dockerfile
// copies exists (and is not ignored), what it runs is what the build produces,
// and it runs unprivileged with a health check, on a pinned base image.
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DEFAULT_PORTS } from '@purify/runtime';
import { dockerignore, parseDockerfile, stagesOf, type Instruction, type Stage } from '../src/dockerfile';

const ROOT = join(__dirname, '..', '..');
const SERVICES = ['segmenter', 'reliability', 'agent', 'trainer'] as const;
const ignored = dockerignore(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));

/** Where `tsc` writes the `.js` of `source` (a path inside `project`), from the project's tsconfig. */
function compiledPath(project: string, source: string): string {
  const tsconfig = JSON.parse(readFileSync(join(ROOT, project, 'tsconfig.json'), 'utf8')) as { compilerOptions: { rootDir: string; outDir: string } };
  const rel = relative(join(ROOT, project, tsconfig.compilerOptions.rootDir), join(ROOT, project, source));
  return join(project, tsconfig.compilerOptions.outDir, rel.replace(/\.ts$/, '.js'));
}

function load(service: string): { stages: Stage[]; all: Instruction[] } {
  const all = parseDockerfile(readFileSync(join(ROOT, 'services', service, 'Dockerfile'), 'utf8'));
  return { stages: stagesOf(all), all };
}

describe('.dockerignore', () => {
  it.each([
    // [path in the context, expected excluded]
    ['node_modules/@grpc/grpc-js/package.json', true],
    ['libs/runtime/node_modules/x/index.js', true],
    ['libs/runtime/dist/index.js', true],
    ['proto/dist/index.js', true],
    ['.git/HEAD', true],
    ['artifacts/models/unet/1/model.onnx', true],
    ['package.json', false],
    ['package-lock.json', false],
    ['.npmrc', false],
    ['tsconfig.base.json', false],
    ['libs/runtime/src/healthcheck.ts', false],
    ['proto/purify/v1/common.proto', false],
    ['services/segmenter/src/main.ts', false],
    ['libs/artifacts/src/index.ts', false],
  ])('%s → excluded %p', (path, expected) => {
    expect(ignored(path)).toBe(expected);
  });
});

/** Debian packages of the native training kernels (libs/models/native): only the trainer trains. */
const NATIVE_PACKAGES: Record<(typeof SERVICES)[number], { build: readonly string[]; runtime: readonly string[] }> = {
  segmenter: { build: [], runtime: [] },
  reliability: { build: [], runtime: [] },
  agent: { build: [], runtime: [] },
  trainer: { build: ['g++', 'libopenblas-dev', 'pkg-config'], runtime: ['libopenblas0-pthread'] },
};

describe.each(SERVICES)('services/%s/Dockerfile', (service) => {
  const { stages, all } = load(service);
  const final = stages[stages.length - 1] as Stage;
  const pkg = JSON.parse(readFileSync(join(ROOT, 'services', service, 'package.json'), 'utf8')) as { name: string };

  it('is multi-stage on node 20 slim images, pinned by major version', () => {
    expect(stages.map((s) => [s.image, s.name])).toEqual([
      ['node:20-bookworm-slim', 'build'],
      ['build', 'prod'],
      ['node:20-bookworm-slim', undefined],
    ]);
  });

  it('copies only files that exist in the context and are not ignored', () => {
    const contextCopies = all.filter((i) => (i.keyword === 'COPY' || i.keyword === 'ADD') && i.flags['from'] === undefined);
    expect(contextCopies.length).toBeGreaterThan(0);
    for (const copy of contextCopies) {
      for (const source of copy.words.slice(0, -1)) {
        expect([copy.line, source, existsSync(join(ROOT, source))]).toEqual([copy.line, source, true]);
        if (source !== '.') expect([source, ignored(source)]).toEqual([source, false]);
      }
    }
    // `COPY . .` brings the workspace: what `npm ci` and `npm run build` need must not be ignored.
    for (const needed of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'tsconfig.base.json', `services/${service}/package.json`, `services/${service}/src/main.ts`, 'libs/runtime/src/healthcheck.ts']) {
      expect([needed, existsSync(join(ROOT, needed)), ignored(needed)]).toEqual([needed, true, false]);
    }
  });

  it('copies from earlier stages only what the build stage has (its WORKDIR holds the context)', () => {
    const build = stages[0] as Stage;
    const workdir = build.instructions.find((i) => i.keyword === 'WORKDIR')?.words[0];
    expect(workdir).toBe('/src');
    for (const copy of all.filter((i) => i.keyword === 'COPY' && i.flags['from'] !== undefined)) {
      expect(stages.slice(0, -1).map((s) => s.name)).toContain(copy.flags['from']);
      const source = copy.words[0] as string;
      expect(source.startsWith('/src/')).toBe(true);
      const inContext = source.slice('/src/'.length);
      // node_modules is made by `npm ci` inside the image; everything else comes from the context.
      if (inContext !== 'node_modules') expect([inContext, existsSync(join(ROOT, inContext))]).toEqual([inContext, true]);
    }
  });

  it('installs with npm ci (CUDA download skipped), builds, and keeps only this service’s production dependencies', () => {
    const runs = (s: Stage) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.words.filter((w) => !w.startsWith('--mount')).join(' '));
    const envOf = (s: Stage) => s.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
    expect(envOf(stages[0] as Stage)).toContain('ONNXRUNTIME_NODE_INSTALL=skip');
    expect(envOf(final)).toContain('ONNXRUNTIME_NODE_INSTALL=skip');
    const apt = (packages: readonly string[]) =>
      packages.length === 0 ? [] : [`apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')} && rm -rf /var/lib/apt/lists/*`];
    const native = NATIVE_PACKAGES[service];
    expect(runs(stages[0] as Stage)).toEqual([...apt(native.build), 'npm ci --no-audit --no-fund', 'npm run build']);
    expect(runs(stages[1] as Stage)[0]).toBe(`npm ci --omit=dev --workspace=${pkg.name} --no-audit --no-fund`);
    // The final stage installs no npm packages, and from Debian only the native kernels' runtime library.
    expect(runs(final).filter((r) => /\bnpm\b|apt-get/.test(r))).toEqual(apt(native.runtime));
    if (native.build.length > 0) {
      // A failed native build must fail the image, not fall back to the slow kernels.
      expect(envOf(stages[0] as Stage)).toContain('PURIFY_NATIVE_KERNELS=require');
      expect(envOf(final)).toContain('PURIFY_NATIVE_KERNELS=require');
    }
  });

  it('runs the compiled entry point as a non-root user, with a gRPC health check and the right ports', () => {
    const entrypoint = final.instructions.find((i) => i.keyword === 'ENTRYPOINT')?.words;
    const main = compiledPath(`services/${service}`, 'src/main.ts');
    expect(existsSync(join(ROOT, 'services', service, 'src', 'main.ts'))).toBe(true);
    expect(entrypoint).toEqual(['node', main]);
    expect(main).toBe(`services/${service}/dist/main.js`);

    const users = final.instructions.filter((i) => i.keyword === 'USER').map((i) => i.words[0]);
    expect(users.length).toBeGreaterThan(0);
    expect(['root', '0', '0:0'].includes(users[users.length - 1] as string)).toBe(false);
    // Every instruction after USER runs unprivileged, including the entry point.
    const userIndex = final.instructions.findIndex((i) => i.keyword === 'USER');
    expect(final.instructions.findIndex((i) => i.keyword === 'ENTRYPOINT')).toBeGreaterThan(userIndex);

    const healthcheck = final.instructions.find((i) => i.keyword === 'HEALTHCHECK');
    expect(healthcheck?.words).toEqual(['node', compiledPath('libs/runtime', 'src/healthcheck.ts'), service]);
    expect(healthcheck?.flags).toMatchObject({ interval: '15s', timeout: '5s' });

    const exposed = final.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.words.map(Number));
    expect(exposed).toEqual([DEFAULT_PORTS[service], 9464]);
    const env = final.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
    expect(env).toContain(`PURIFY_${service.toUpperCase()}_HOST=0.0.0.0`);
    expect(env).toContain(`PURIFY_${service.toUpperCase()}_METRICS_PORT=9464`);
  });
});

describe('parseDockerfile', () => {
  it('joins continuations, skips comments, and reads flags and exec form', () => {
    const parsed = parseDockerfile('# c\nFROM a AS b\nRUN --mount=type=cache,target=/x \\\n  echo hi\nHEALTHCHECK --interval=5s CMD ["node", "p.js"]\n');
    expect(parsed.map((i) => [i.keyword, i.words, i.flags, i.line])).toEqual([
      ['FROM', ['a', 'AS', 'b'], {}, 2],
      ['RUN', ['echo', 'hi'], { mount: 'type=cache,target=/x' }, 3],
      ['HEALTHCHECK', ['node', 'p.js'], { interval: '5s' }, 5],
    ]);
  });
});
