import { ErrorCode, PurifyError } from './errors';
import { MemoryBudget, type MemoryBudgetSettings } from './memory-budget';

const settings: MemoryBudgetSettings = { limitBytes: 100, maxConcurrent: 2, waitMs: 0, maxWaiting: 0, limitSetting: '--budget', concurrentSetting: '--max-calls' };

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err instanceof PurifyError ? err.code : 'other';
  }
}

describe('MemoryBudget', () => {
  it.each([
    // reservations held, then the one asked → the outcome, without waiting
    [[], 100, undefined], // exactly the whole budget
    [[], 101, ErrorCode.InvalidArgument], // can never fit
    [[60], 40, undefined],
    [[60], 41, ErrorCode.ResourceExhausted], // fits later
    [[10, 10], 1, ErrorCode.ResourceExhausted], // the call limit
    [[10], 0, undefined],
  ] as const)('held %j, asking %d → %s', async (held, bytes, code) => {
    const b = new MemoryBudget(settings);
    for (const h of held) await b.acquire(h, 'held');
    expect(await codeOf(b.acquire(bytes, 'Segment of case 1'))).toBe(code);
  });

  it('releases exactly once, and a refused call holds nothing', async () => {
    const b = new MemoryBudget(settings);
    const r1 = await b.acquire(70, 'a');
    await expect(b.acquire(40, 'b')).rejects.toThrow('b: it needs about 0.0 MiB of working memory and 0.0 MiB of the 0.0 MiB budget (--budget) are held by 1 running calls; 0 calls wait, at most 0 for 0 ms; retry later');
    expect(b.usage).toEqual({ bytes: 70, calls: 1, waiting: 0 });
    r1();
    r1();
    expect(b.usage).toEqual({ bytes: 0, calls: 0, waiting: 0 });
    const r2 = await b.acquire(100, 'c');
    expect(b.usage).toEqual({ bytes: 100, calls: 1, waiting: 0 });
    r2();
  });

  it('names the settings to change in its messages', async () => {
    const b = new MemoryBudget({ ...settings, limitBytes: 3 * 2 ** 20 });
    await expect(b.acquire(4 * 2 ** 20, 'Segment')).rejects.toThrow("Segment needs about 4.0 MiB of working memory, more than this server's whole budget of 3.0 MiB (--budget)");
    await b.acquire(1, 'x');
    await b.acquire(1, 'y');
    await expect(b.acquire(1, 'Segment')).rejects.toThrow('Segment: 2 calls are running, the limit is 2 (--max-calls); 0 calls wait, at most 0 for 0 ms; retry later');
  });

  it('a call that does not fit waits its turn, first come first served, and gets the room a release frees', async () => {
    const b = new MemoryBudget({ ...settings, maxConcurrent: 1, waitMs: 10_000, maxWaiting: 2 });
    const order: string[] = [];
    const first = await b.acquire(10, 'first');
    const second = b.acquire(10, 'second').then((r) => (order.push('second'), r));
    const third = b.acquire(10, 'third').then((r) => (order.push('third'), r));
    // A fourth call finds the queue full and is refused at once.
    await expect(b.acquire(10, 'fourth')).rejects.toMatchObject({ code: ErrorCode.ResourceExhausted });
    expect(b.usage).toEqual({ bytes: 10, calls: 1, waiting: 2 });
    first();
    (await second)();
    (await third)();
    expect(order).toEqual(['second', 'third']);
    expect(b.usage).toEqual({ bytes: 0, calls: 0, waiting: 0 });
  });

  it('a wait ends with RESOURCE_EXHAUSTED after waitMs, or with the signal’s reason, and leaves the queue', async () => {
    jest.useFakeTimers();
    try {
      const b = new MemoryBudget({ ...settings, maxConcurrent: 1, waitMs: 500, maxWaiting: 4 });
      const held = await b.acquire(10, 'held');
      const timedOut = b.acquire(10, 'late');
      const controller = new AbortController();
      const aborted = b.acquire(10, 'aborted', controller.signal);
      controller.abort(new Error('caller went away'));
      await expect(aborted).rejects.toThrow('caller went away');
      jest.advanceTimersByTime(500);
      await expect(timedOut).rejects.toThrow('late: 1 calls are running, the limit is 1 (--max-calls); 1 calls wait, at most 4 for 500 ms; retry later');
      expect(b.usage).toEqual({ bytes: 10, calls: 1, waiting: 0 });
      held();
      expect(b.usage).toEqual({ bytes: 0, calls: 0, waiting: 0 });
    } finally {
      jest.useRealTimers();
    }
  });

  it.each([
    [{ ...settings, limitBytes: 0 }],
    [{ ...settings, limitBytes: Number.NaN }],
    [{ ...settings, maxConcurrent: 0 }],
    [{ ...settings, maxConcurrent: 1.5 }],
    [{ ...settings, waitMs: -1 }],
    [{ ...settings, maxWaiting: 0.5 }],
  ])('refuses settings %j', (s) => {
    expect(() => new MemoryBudget(s)).toThrow(RangeError);
  });
});
