import { KeyedMutex } from './mutex';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('KeyedMutex', () => {
  it('runs holders of one key one at a time, in arrival order, across awaits', async () => {
    const mutex = new KeyedMutex();
    const trace: string[] = [];
    const job = (name: string) => mutex.run('k', async () => {
      trace.push(`${name}+`);
      await tick();
      await tick();
      trace.push(`${name}-`);
    });
    await Promise.all([job('a'), job('b'), job('c')]);
    // Without the lock the trace would be a+ b+ c+ a- b- c-.
    expect(trace).toEqual(['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
    expect(mutex.isLocked('k')).toBe(false);
  });

  it('lets different keys overlap, takes key sets in sorted order, releases after a throw', async () => {
    const mutex = new KeyedMutex();
    const trace: string[] = [];
    const hold = (keys: string[], name: string) => mutex.run(keys, async () => {
      trace.push(`${name}+`);
      await tick();
      trace.push(`${name}-`);
    });
    // x and y overlap; {y, x} waits for both (no deadlock although given in the other order).
    await Promise.all([hold(['x'], 'x'), hold(['y'], 'y'), hold(['y', 'x'], 'xy')]);
    expect(trace.slice(0, 2)).toEqual(['x+', 'y+']);
    expect(trace.slice(-2)).toEqual(['xy+', 'xy-']);
    await expect(mutex.run('z', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(mutex.run('z', () => 'free again')).resolves.toBe('free again');
  });
});
