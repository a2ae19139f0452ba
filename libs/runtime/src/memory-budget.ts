/**
 * A service's budget for memory-heavy calls (#25 item 8): at most
 * `maxConcurrent` calls hold a reservation at once, and their reservations sum
 * to at most `limitBytes`. A call reserves its estimated working memory before
 * it allocates anything and releases it when it ends, whatever the outcome.
 * Beyond the budget a call is refused at once — RESOURCE_EXHAUSTED, which
 * clients may retry later — instead of queueing or allocating until the
 * process dies; a call that alone needs more than the whole budget can never
 * run and gets INVALID_ARGUMENT.
 */
import { ErrorCode, PurifyError } from './errors';

export interface MemoryBudgetSettings {
  /** Sum of the reservations held at once, bytes (> 0). */
  readonly limitBytes: number;
  /** Calls holding a reservation at once (≥ 1). */
  readonly maxConcurrent: number;
  /** The settings' names for the messages, e.g. `--memory-budget-bytes`. */
  readonly limitSetting: string;
  readonly concurrentSetting: string;
}

/** Releases a reservation; idempotent. */
export type Release = () => void;

export class MemoryBudget {
  private heldBytes = 0;
  private holders = 0;

  constructor(readonly settings: MemoryBudgetSettings) {
    if (!(Number.isSafeInteger(settings.limitBytes) && settings.limitBytes > 0)) throw new RangeError(`limitBytes must be a positive integer, got ${settings.limitBytes}`);
    if (!(Number.isSafeInteger(settings.maxConcurrent) && settings.maxConcurrent >= 1)) throw new RangeError(`maxConcurrent must be an integer ≥ 1, got ${settings.maxConcurrent}`);
  }

  /** Bytes and calls held now. */
  get usage(): { bytes: number; calls: number } {
    return { bytes: this.heldBytes, calls: this.holders };
  }

  /** Reserves `bytes` for one call described by `what`, or throws (see the module comment). */
  reserve(bytes: number, what: string): Release {
    const s = this.settings;
    if (!(Number.isFinite(bytes) && bytes >= 0)) throw new RangeError(`bytes must be a finite number ≥ 0, got ${bytes}`);
    if (bytes > s.limitBytes) {
      throw new PurifyError(ErrorCode.InvalidArgument, `${what} needs about ${mib(bytes)} of working memory, more than this server's whole budget of ${mib(s.limitBytes)} (${s.limitSetting}); send a smaller volume or raise the budget`);
    }
    if (this.holders >= s.maxConcurrent) {
      throw new PurifyError(ErrorCode.ResourceExhausted, `${what}: ${this.holders} calls are running, the limit is ${s.maxConcurrent} (${s.concurrentSetting}); retry later`);
    }
    if (this.heldBytes + bytes > s.limitBytes) {
      throw new PurifyError(
        ErrorCode.ResourceExhausted,
        `${what} needs about ${mib(bytes)} of working memory; ${mib(this.heldBytes)} of the ${mib(s.limitBytes)} budget (${s.limitSetting}) are held by ${this.holders} running calls; retry later`,
      );
    }
    this.heldBytes += bytes;
    this.holders += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.heldBytes -= bytes;
      this.holders -= 1;
    };
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
