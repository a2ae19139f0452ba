/**
 * A service's budget for memory-heavy calls (#25 item 8): at most
 * `maxConcurrent` calls hold a reservation at once, and their reservations sum
 * to at most `limitBytes`. A call reserves its estimated working memory before
 * it allocates anything and releases it when it ends, whatever the outcome.
 *
 * A call that does not fit now waits, first come first served, up to
 * `waitMs` and behind at most `maxWaiting` others — a burst of calls (the
 * reliability service fans a job out into many) is absorbed while nothing
 * waiting holds memory yet. Beyond the wait, or the queue, the call is refused
 * with RESOURCE_EXHAUSTED, which clients may retry later, instead of
 * allocating until the process dies; a call that alone needs more than the
 * whole budget can never run and gets INVALID_ARGUMENT at once.
 */
import { ErrorCode, PurifyError } from './errors';

export interface MemoryBudgetSettings {
  /** Sum of the reservations held at once, bytes (> 0). */
  readonly limitBytes: number;
  /** Calls holding a reservation at once (≥ 1). */
  readonly maxConcurrent: number;
  /** How long a call may wait for room, ms (≥ 0; 0 = refuse at once). */
  readonly waitMs: number;
  /** Calls that may wait at once (≥ 0); one more is refused at once. */
  readonly maxWaiting: number;
  /** The settings' names for the messages, e.g. `--memory-budget-bytes`. */
  readonly limitSetting: string;
  readonly concurrentSetting: string;
}

/** Releases a reservation; idempotent. */
export type Release = () => void;

interface Waiter {
  readonly bytes: number;
  readonly grant: (release: Release) => void;
}

export class MemoryBudget {
  private heldBytes = 0;
  private holders = 0;
  private readonly waiting: Waiter[] = [];

  constructor(readonly settings: MemoryBudgetSettings) {
    const int = (v: number, min: number): boolean => Number.isSafeInteger(v) && v >= min;
    if (!int(settings.limitBytes, 1)) throw new RangeError(`limitBytes must be a positive integer, got ${settings.limitBytes}`);
    if (!int(settings.maxConcurrent, 1)) throw new RangeError(`maxConcurrent must be an integer ≥ 1, got ${settings.maxConcurrent}`);
    if (!int(settings.waitMs, 0)) throw new RangeError(`waitMs must be an integer ≥ 0, got ${settings.waitMs}`);
    if (!int(settings.maxWaiting, 0)) throw new RangeError(`maxWaiting must be an integer ≥ 0, got ${settings.maxWaiting}`);
  }

  /** Bytes and calls held now, and calls waiting. */
  get usage(): { bytes: number; calls: number; waiting: number } {
    return { bytes: this.heldBytes, calls: this.holders, waiting: this.waiting.length };
  }

  /**
   * Reserves `bytes` for one call described by `what`: at once when it fits
   * and nobody waits, else after waiting its turn (see the module comment).
   * An aborted `signal` ends the wait with its reason.
   */
  async acquire(bytes: number, what: string, signal?: AbortSignal): Promise<Release> {
    const s = this.settings;
    if (!(Number.isFinite(bytes) && bytes >= 0)) throw new RangeError(`bytes must be a finite number ≥ 0, got ${bytes}`);
    if (bytes > s.limitBytes) {
      throw new PurifyError(ErrorCode.InvalidArgument, `${what} needs about ${mib(bytes)} of working memory, more than this server's whole budget of ${mib(s.limitBytes)} (${s.limitSetting}); send a smaller volume or raise the budget`);
    }
    signal?.throwIfAborted();
    if (this.waiting.length === 0 && this.fits(bytes)) return this.take(bytes);
    if (s.waitMs === 0 || this.waiting.length >= s.maxWaiting) throw this.exhausted(bytes, what);
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        grant: (release) => {
          cleanup();
          resolve(release);
        },
      };
      const leave = (err: unknown): void => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        cleanup();
        reject(err instanceof Error ? err : new Error(String(err)));
        // The head of the queue may have been blocking smaller calls behind it.
        this.wake();
      };
      const timer = setTimeout(() => leave(this.exhausted(bytes, what)), s.waitMs);
      const onAbort = (): void => leave(signal?.reason);
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private fits(bytes: number): boolean {
    return this.holders < this.settings.maxConcurrent && this.heldBytes + bytes <= this.settings.limitBytes;
  }

  private take(bytes: number): Release {
    this.heldBytes += bytes;
    this.holders += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.heldBytes -= bytes;
      this.holders -= 1;
      this.wake();
    };
  }

  /** Grants waiting calls in order while the first one fits. */
  private wake(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) {
      const w = this.waiting.shift()!;
      w.grant(this.take(w.bytes));
    }
  }

  private exhausted(bytes: number, what: string): PurifyError {
    const s = this.settings;
    const why =
      this.holders >= s.maxConcurrent
        ? `${this.holders} calls are running, the limit is ${s.maxConcurrent} (${s.concurrentSetting})`
        : `it needs about ${mib(bytes)} of working memory and ${mib(this.heldBytes)} of the ${mib(s.limitBytes)} budget (${s.limitSetting}) are held by ${this.holders} running calls`;
    return new PurifyError(ErrorCode.ResourceExhausted, `${what}: ${why}; ${this.waiting.length} calls wait, at most ${s.maxWaiting} for ${s.waitMs} ms; retry later`);
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
