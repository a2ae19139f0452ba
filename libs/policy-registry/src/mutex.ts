/**
 * A keyed async mutex. Node runs one callback at a time, but a mutation that
 * awaits (file appends, fsync) can interleave with another request at each
 * `await`; holding the key's lock across the whole validate → persist → apply
 * sequence makes it atomic with respect to every other holder of that key.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * Runs `fn` while holding every key in `keys` (acquired in sorted order, so two
   * callers asking for overlapping sets cannot deadlock). Locks are released
   * whether `fn` resolves or throws.
   */
  async run<T>(keys: string | readonly string[], fn: () => Promise<T> | T): Promise<T> {
    const sorted = [...new Set(typeof keys === 'string' ? [keys] : keys)].sort();
    const releases: (() => void)[] = [];
    try {
      for (const key of sorted) releases.push(await this.acquire(key));
      return await fn();
    } finally {
      for (const release of releases.reverse()) release();
    }
  }

  /** True while some caller holds or waits for `key` (for tests and diagnostics). */
  isLocked(key: string): boolean {
    return this.tails.has(key);
  }

  private async acquire(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    return () => {
      release();
      // The last holder of a key cleans up, so idle keys do not accumulate.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}
