import { ErrorCode, PurifyError } from './errors';
import { MemoryBudget } from './memory-budget';

const settings = { limitBytes: 100, maxConcurrent: 2, limitSetting: '--budget', concurrentSetting: '--max-calls' };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof PurifyError ? err.code : 'other';
  }
}

describe('MemoryBudget', () => {
  it.each([
    // reservations held, then the one asked → the outcome
    [[], 100, undefined], // exactly the whole budget
    [[], 101, ErrorCode.InvalidArgument], // can never fit
    [[60], 40, undefined],
    [[60], 41, ErrorCode.ResourceExhausted], // fits later
    [[10, 10], 1, ErrorCode.ResourceExhausted], // the call limit
    [[10], 0, undefined],
  ] as const)('held %j, asking %d → %s', (held, bytes, code) => {
    const b = new MemoryBudget(settings);
    for (const h of held) b.reserve(h, 'held');
    expect(codeOf(() => b.reserve(bytes, 'Segment of case 1'))).toBe(code);
  });

  it('releases exactly once, and a refused call holds nothing', () => {
    const b = new MemoryBudget(settings);
    const r1 = b.reserve(70, 'a');
    expect(() => b.reserve(40, 'b')).toThrow(/needs about 0\.0 MiB.*0\.0 MiB of the 0\.0 MiB budget \(--budget\) are held by 1 running calls; retry later/);
    expect(b.usage).toEqual({ bytes: 70, calls: 1 });
    r1();
    r1();
    expect(b.usage).toEqual({ bytes: 0, calls: 0 });
    const r2 = b.reserve(100, 'c');
    expect(b.usage).toEqual({ bytes: 100, calls: 1 });
    r2();
  });

  it('names the settings to change in its messages', () => {
    const b = new MemoryBudget({ ...settings, limitBytes: 3 * 2 ** 20 });
    expect(() => b.reserve(4 * 2 ** 20, 'Segment')).toThrow('Segment needs about 4.0 MiB of working memory, more than this server\'s whole budget of 3.0 MiB (--budget)');
    b.reserve(1, 'x');
    b.reserve(1, 'y');
    expect(() => b.reserve(1, 'Segment')).toThrow('Segment: 2 calls are running, the limit is 2 (--max-calls); retry later');
  });

  it.each([
    [{ ...settings, limitBytes: 0 }],
    [{ ...settings, limitBytes: Number.NaN }],
    [{ ...settings, maxConcurrent: 0 }],
    [{ ...settings, maxConcurrent: 1.5 }],
  ])('refuses settings %j', (s) => {
    expect(() => new MemoryBudget(s)).toThrow(RangeError);
  });
});
