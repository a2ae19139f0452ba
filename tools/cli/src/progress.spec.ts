import { Progress } from './progress';

describe('Progress', () => {
  let lines: string[];
  beforeEach(() => {
    lines = [];
    // Lines to a non-terminal are throttled to one per 3 s: let 5 s pass between updates.
    let now = 0;
    jest.spyOn(Date, 'now').mockImplementation(() => (now += 5000));
    jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
  });
  afterEach(() => jest.restoreAllMocks());

  it.each([
    // [total at start, updates as [done, new total or undefined], the counts the last line shows]
    [10, [[10, undefined]], '10/10'],
    [1500, [[1500, undefined], [1600, 2250]], '1600/2250'],
    [1500, [[900, 1350], [1350, undefined]], '1350/1350'],
  ] as const)('total %i, updates %j: the last line shows %s and the bar never reads more done than total', (total, updates, shown) => {
    const bar = new Progress('source model', total);
    for (const [done, next] of updates) {
      if (next !== undefined) bar.setTotal(next);
      bar.update(done);
    }
    const last = lines[lines.length - 1]!;
    expect(last).toContain(` ${shown} `);
    for (const l of lines) {
      const m = / (\d+)\/(\d+) /.exec(l)!;
      expect(Number(m[1])).toBeLessThanOrEqual(Number(m[2]));
    }
  });
});
