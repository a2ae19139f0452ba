// `purify benchmark` continues a run folder only with the settings its finished stages were made with.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError } from '../src/cli-util';
import { benchmarkSummary, checkRunConfig, provenanceRows, rlVersusBestBaseline, type BenchmarkOptions, type MethodResult } from '../src/commands/benchmark';

const base: BenchmarkOptions = {
  out: 'unused',
  benchmarks: ['ct-mr'],
  methods: ['source-only', 'rl'],
  seeds: [1],
  trainCases: 4,
  testCases: 2,
  size: 64,
  slices: 12,
  sourceSteps: 10,
  augment: 'strong',
  rounds: 2,
  stepsPerRound: 5,
  batchSize: 4,
  oracleSteps: 20,
  command: 'purify benchmark',
};

describe('checkRunConfig', () => {
  const out = mkdtempSync(join(tmpdir(), 'purify-bench-config-'));
  checkRunConfig(out, base);

  it('records the settings at the first run', () => {
    const recorded = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(recorded).toMatchObject({ size: 64, slices: 12, sourceSteps: 10, augment: 'strong', rounds: 2, stepsPerRound: 5, batchSize: 4, oracleSteps: 20, trainCases: 4, testCases: 2 });
    expect(typeof recorded['generatorVersion']).toBe('number');
    for (const k of ['out', 'benchmarks', 'methods', 'seeds', 'command']) expect(recorded).not.toHaveProperty(k);
  });

  it.each([
    { name: 'more benchmarks, methods and seeds', change: { benchmarks: ['ct-mr', 'ct-cbct'], methods: ['naive'], seeds: [1, 2, 3], command: 'other' } },
    { name: 'the same settings', change: {} },
  ])('continues with $name', ({ change }) => {
    expect(() => checkRunConfig(out, { ...base, ...change })).not.toThrow();
  });

  it.each([
    { change: { size: 96 }, message: 'size: 64 there, 96 now' },
    { change: { stepsPerRound: 40, augment: 'light' as const }, message: 'augment: "strong" there, "light" now; stepsPerRound: 5 there, 40 now' },
  ])('refuses $message', ({ change, message }) => {
    expect(() => checkRunConfig(out, { ...base, ...change })).toThrow(CliError);
    expect(() => checkRunConfig(out, { ...base, ...change })).toThrow(message);
  });
});

describe('provenanceRows', () => {
  const at = (commit: string, finishedAt: string) => ({ commit, machine: 'vm (2 × cpu)', finishedAt });
  it.each([
    {
      name: 'rows of two commits and one without provenance, grouped',
      results: [
        { benchmark: 'ct-mr', method: 'naive', seed: 2, provenance: at('aaa', '2026-11-26T10:00:00Z') },
        { benchmark: 'ct-mr', method: 'naive', seed: 1, provenance: at('aaa', '2026-11-26T09:00:00Z') },
        { benchmark: 'ct-mr', method: 'rl', seed: 1, provenance: at('bbb', '2026-11-27T01:00:00Z') },
        { benchmark: 'ct-cbct', method: 'rl', seed: 1, provenance: at('bbb', '2026-11-27T02:00:00Z') },
        { benchmark: 'ct-mr', method: 'oracle', seed: 1 },
      ],
      want: [
        ['aaa', 'vm (2 × cpu)', '2026-11-26T09:00:00Z … 2026-11-26T10:00:00Z', 'ct-mr: naive s1,2'],
        ['bbb', 'vm (2 × cpu)', '2026-11-27T01:00:00Z … 2026-11-27T02:00:00Z', 'ct-mr: rl s1; ct-cbct: rl s1'],
        ['not recorded', 'not recorded', '–', 'ct-mr: oracle s1'],
      ],
    },
    { name: 'no rows', results: [], want: [] },
  ])('$name', ({ results, want }) => {
    expect(provenanceRows(results)).toEqual(want);
  });
});

describe('checkRunConfig: method-scoped settings', () => {
  it.each([
    { name: 'no oracle row finished: the new value is taken and recorded', rows: ['ct-mr/s1/naive', 'ct-cbct/s2/rl'], error: undefined },
    {
      name: 'a finished oracle row: refused, naming it',
      rows: ['ct-mr/s1/naive', 'ct-cbct/s2/oracle'],
      error: 'holds rows made with other settings (oracleSteps: 20 there, 600 now): ',
    },
  ])('$name', ({ rows, error }) => {
    const out = mkdtempSync(join(tmpdir(), 'purify-bench-scoped-'));
    checkRunConfig(out, base);
    for (const r of rows) {
      mkdirSync(join(out, r), { recursive: true });
      writeFileSync(join(out, r, 'result.json'), '{}');
    }
    // A folder without result.json is an unfinished row: it never blocks.
    mkdirSync(join(out, 'ct-mr', 's3', 'oracle'), { recursive: true });
    const next = { ...base, oracleSteps: 600 };
    if (error === undefined) {
      checkRunConfig(out, next);
      expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toMatchObject({ oracleSteps: 600, size: 64 });
      // …and the run continues with it from now on.
      expect(() => checkRunConfig(out, next)).not.toThrow();
    } else {
      expect(() => checkRunConfig(out, next)).toThrow(CliError);
      expect(() => checkRunConfig(out, next)).toThrow(error + join(out, 'ct-cbct', 's2', 'oracle') + ';');
      expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toMatchObject({ oracleSteps: 20 });
    }
    // A global setting stays refused whatever rows exist.
    expect(() => checkRunConfig(out, { ...next, size: 96 })).toThrow('holds a run made with other settings (size: 64 there, 96 now)');
  });

  it('--target-loss is scoped to the gated rows: a finished rl row blocks it, naive rows do not', () => {
    const out = mkdtempSync(join(tmpdir(), 'purify-bench-loss-'));
    checkRunConfig(out, base);
    for (const r of [join('ct-mr', 's1', 'naive'), join('ct-mr', 's1', 'rl')]) {
      mkdirSync(join(out, r), { recursive: true });
      writeFileSync(join(out, r, 'result.json'), '{}');
    }
    const next = { ...base, targetLoss: 'class-mass' as const };
    expect(() => checkRunConfig(out, next)).toThrow(`holds rows made with other settings (targetLoss: undefined there, "class-mass" now): ${join(out, 'ct-mr', 's1', 'rl')};`);
    rmSync(join(out, 'ct-mr', 's1', 'rl'), { recursive: true });
    checkRunConfig(out, next);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toMatchObject({ targetLoss: 'class-mass' });
  });
});

describe('benchmarkSummary (docs/results/benchmark.json)', () => {
  const row = (benchmark: string, method: string, seed: number, dice: number): MethodResult => ({
    benchmark,
    seed,
    method,
    model: { name: 'm', version: 1 },
    perOrgan: { liver: { dice, hd95Mm: 10 * seed, assdMm: seed }, spleen: { dice: dice / 2, hd95Mm: 0, assdMm: 0 } },
    perCaseDice: [dice],
    mean: { dice, hd95Mm: 10 * seed, assdMm: seed },
    wallMs: 1,
  });
  it('per benchmark and method: mean and population std over seeds, per-seed values in seed order, organ means, gap closure', () => {
    const o = { ...base, methods: ['source-only', 'rl', 'oracle'], seeds: [1, 2] };
    // Rows arrive out of seed order; rl: seeds 1, 2 → 0.6, 0.8 (mean 0.7, std 0.1); source-only 0.5, 0.5; oracle 0.9, 0.9.
    const results = [row('ct-mr', 'rl', 2, 0.8), row('ct-mr', 'rl', 1, 0.6), row('ct-mr', 'source-only', 1, 0.5), row('ct-mr', 'source-only', 2, 0.5), row('ct-mr', 'oracle', 1, 0.9), row('ct-mr', 'oracle', 2, 0.9)];
    const s = benchmarkSummary(o, results, 61_400, { commit: 'abc', machine: 'vm' }) as {
      commit: string;
      wallSeconds: number;
      benchmarks: Record<string, { methods: Record<string, { mean: number; std: number; perSeed: number[]; seeds: number[]; perOrgan: Record<string, number>; hd95Mm: number; gapClosure?: number }> }>;
    };
    expect(s.commit).toBe('abc');
    expect(s.wallSeconds).toBe(61);
    const rl = s.benchmarks['ct-mr']!.methods['rl']!;
    expect(rl.perSeed).toEqual([0.6, 0.8]);
    expect(rl.seeds).toEqual([1, 2]);
    expect(rl.mean).toBeCloseTo(0.7, 12);
    expect(rl.std).toBeCloseTo(0.1, 12);
    expect(rl.perOrgan).toEqual({ liver: expect.closeTo(0.7, 12) as number, spleen: expect.closeTo(0.35, 12) as number });
    expect(rl.hd95Mm).toBeCloseTo(15, 12);
    // (0.7 − 0.5) / (0.9 − 0.5) = 0.5; none for the two anchors.
    expect(rl.gapClosure).toBeCloseTo(0.5, 12);
    expect(s.benchmarks['ct-mr']!.methods['source-only']!.gapClosure).toBeUndefined();
    expect(s.benchmarks['ct-mr']!.methods['oracle']!.gapClosure).toBeUndefined();
  });
});

describe('rlVersusBestBaseline (#21 item 8)', () => {
  const row = (method: string, seed: number, perCaseDice: number[]): MethodResult => {
    const dice = perCaseDice.reduce((a, b) => a + b, 0) / perCaseDice.length;
    return { benchmark: 'ct-mr', seed, method, model: { name: 'm', version: 1 }, perOrgan: {}, perCaseDice, mean: { dice, hd95Mm: 0, assdMm: 0 }, wallMs: 1 };
  };
  it('pairs rl with the baseline of the highest mean Dice (never the oracle), seed by seed', () => {
    const results = [
      row('source-only', 1, [0.5, 0.5]),
      row('source-only', 2, [0.5, 0.5]),
      // naive: mean 0.7 — the best baseline; cbst 0.65; the oracle 0.9 is not a baseline.
      row('naive', 1, [0.7, 0.7]),
      row('naive', 2, [0.6, 0.8]),
      row('cbst', 1, [0.65, 0.65]),
      row('cbst', 2, [0.65, 0.65]),
      row('oracle', 1, [0.9, 0.9]),
      row('oracle', 2, [0.9, 0.9]),
      row('rl', 2, [0.62, 0.8]),
      row('rl', 1, [0.75, 0.71]),
    ];
    const p = rlVersusBestBaseline(results, 'ct-mr')!;
    expect(p.against).toBe('naive');
    expect(p.seeds).toEqual([1, 2]);
    expect(p.perSeed[0]).toBeCloseTo(0.73 - 0.7, 12);
    expect(p.perSeed[1]).toBeCloseTo(0.71 - 0.7, 12);
    expect([p.wins, p.losses, p.ties]).toEqual([2, 0, 0]);
    // Case differences: seed 1 +0.05, +0.01; seed 2 +0.02, 0 — every resampled mean lies in [0, 0.05].
    expect(p.ci95[0]).toBeGreaterThanOrEqual(-1e-12);
    expect(p.ci95[1]).toBeLessThanOrEqual(0.05 + 1e-12);
    const s = benchmarkSummary({ ...base, methods: ['source-only', 'naive', 'cbst', 'rl', 'oracle'], seeds: [1, 2] }, results, 1000, { commit: 'abc', machine: 'vm' }) as { benchmarks: Record<string, { paired?: unknown }> };
    expect(s.benchmarks['ct-mr']!.paired).toEqual(p);
  });
  it('is absent without an rl row or without a baseline row', () => {
    expect(rlVersusBestBaseline([row('naive', 1, [0.7])], 'ct-mr')).toBeUndefined();
    expect(rlVersusBestBaseline([row('rl', 1, [0.7]), row('oracle', 1, [0.9])], 'ct-mr')).toBeUndefined();
  });
});
