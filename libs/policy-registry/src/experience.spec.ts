import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExperienceStore, weightBin, type DecisionGroup } from './experience';

const options = { ttlMs: 60_000, maxBuffered: 1000, replicaId: 'main', now: () => new Date(0), compactSlack: 0 };
const group = (n: number, key = 'k'): DecisionGroup => ({
  policy: { name: 'p', version: 1 },
  routingKey: key,
  shadow: false,
  context: {},
  rows: Array.from({ length: n }, (_, row) => ({ row, observation: Float32Array.from([row, 0.5]), action: row, logProb: -1, value: 0.25, weight: row / 4, level: row })),
});

describe('weightBin', () => {
  it.each([
    // [weight, bin of 10 equal bins over [0, 1]; 1 belongs to the last]
    [0, 0],
    [0.0999, 0],
    [0.1, 1],
    [0.55, 5],
    [0.9999, 9],
    [1, 9],
  ])('puts %p in bin %p', (w, bin) => {
    expect(weightBin(w)).toBe(bin);
  });
});

describe('ExperienceStore compaction', () => {
  it('rewrites the log to counters + live decisions after an update consumes data, and replays it to the same state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'experience-'));
    const store = await ExperienceStore.open(dir, options);
    const [ids] = await store.record([group(4)]);
    await store.reward((ids ?? []).slice(0, 3).map((id, i) => ({ decisionId: id, reward: i + 1, done: false })));
    const { ids: used } = store.collect({ name: 'p', version: 1 });
    // Rows 0..2 rewarded (one trajectory each: different rows); row 3 pending.
    expect(used).toEqual((ids ?? []).slice(0, 3));
    await store.consume(used);
    // 3 records (act, fb, use) > 2 × 1 live + 0: compacted to one counter baseline and the pending decision.
    const lines = readFileSync(join(dir, 'experience.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { k: string; nc?: boolean });
    expect(lines.map((l) => [l.k, l.nc ?? false])).toEqual([['cnt', false], ['act', true]]);
    const metrics = store.metrics({ name: 'p', version: 1 });
    // 4 decisions with weights 0, .25, .5, .75 → bins 0, 2, 5, 7; rewards 1, 2, 3 → mean 2.
    expect(metrics).toEqual({ ref: { name: 'p', version: 1 }, decisions: 4, rewarded: 3, meanReward: 2, weightHistogram: [1, 0, 1, 0, 0, 1, 0, 1, 0, 0], shadowDecisions: 0, pending: 1, buffered: 0 });
    // Appends after compaction go to the new file.
    await store.reward([{ decisionId: ids?.[3] as string, reward: 6, done: true }]);
    await store.close();
    const again = await ExperienceStore.open(dir, options);
    expect(again.metrics({ name: 'p', version: 1 })).toEqual({ ...metrics, rewarded: 4, meanReward: 3, pending: 0, buffered: 1 });
    expect(again.collect({ name: 'p', version: 1 }).trajectories.map((t) => t.map((x) => [Array.from(x.observation), x.reward, x.done]))).toEqual([[[[3, 0.5], 6, true]]]);
    await again.close();
  });
});
