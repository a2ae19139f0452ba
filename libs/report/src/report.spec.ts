import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { boxPlot, lineChart, niceTicks } from './charts';
import { meanStd, Report } from './report';

describe('charts and reports', () => {
  it.each([
    // [lo, hi, expected ticks]
    [0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1]],
    [0, 10, [0, 2, 4, 6, 8, 10]],
    [0.55, 0.93, [0.6, 0.7, 0.8, 0.9]],
    [3, 3, [3]],
  ])('niceTicks(%p, %p)', (lo, hi, expected) => {
    expect(niceTicks(lo, hi)).toEqual(expected);
  });

  it('meanStd uses the population std and skips NaN', () => {
    // values 1, 2, 3: mean 2, population std sqrt(2/3) = 0.816
    expect(meanStd([1, 2, 3, Number.NaN])).toBe('2.000 ± 0.816');
    expect(meanStd([])).toBe('–');
    expect(meanStd([0.4271, Number.NaN])).toBe('0.427');
  });

  it('draws one polyline per series and breaks lines at NaN', () => {
    const svg = lineChart({ title: 't' }, [
      { name: 'a', points: [[0, 1], [1, 2], [2, Number.NaN], [3, 1], [4, 2]] },
      { name: 'b', points: [[0, 0], [4, 1]] },
    ]);
    expect(svg.match(/<polyline/g)?.length).toBe(3);
  });

  it('places the box plot median at the type-7 median', () => {
    // values 1..5 → median 3 on a y axis fixed to [0, 6]
    const svg = boxPlot({ title: 'b', yRange: [0, 6], height: 360 }, [{ name: 'g', values: [1, 2, 3, 4, 5] }]);
    const top = 36;
    const bottom = 360 - 48;
    const yMedian = bottom - (3 / 6) * (bottom - top);
    expect(svg).toContain(`y1="${yMedian}"`);
  });

  it('writes markdown, html and decodable PNG figures', () => {
    const dir = mkdtempSync(join(tmpdir(), 'report-'));
    const r = new Report('Run')
      .paragraph('Dice per organ')
      .table(['method', 'Dice'], [['rl', '0.9 ± 0.1']])
      .figure('curve.png', lineChart({ title: 'loss', width: 320, height: 200 }, [{ name: 'x', points: [[0, 1], [1, 0.5]] }]), 'learning curve');
    const out = r.write(dir);
    const md = readFileSync(out.markdown, 'utf8');
    expect(md).toContain('| rl | 0.9 ± 0.1 |');
    expect(md).toContain('![learning curve](curve.png)');
    expect(readFileSync(out.html, 'utf8')).toContain('<svg');
    const png = PNG.sync.read(readFileSync(join(dir, 'curve.png')));
    expect([png.width, png.height]).toEqual([320, 200]);
  });
});
