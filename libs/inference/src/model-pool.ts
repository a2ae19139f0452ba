/**
 * The models a process serves: at most one loaded version per model name, hot
 * swapped by {@link ModelPool.load}. Callers run a model through a lease taken
 * when their request starts; a swap or unload retires the old session, which is
 * released only when its last lease ends, so no in-flight request ever fails
 * because of a swap. A failed load changes nothing.
 */
import { ModelRegistry, RegistryError } from '@purify/artifacts';
import { InferenceError } from './errors';
import { DEFAULT_SESSION_CONFIG, type SessionConfig } from './execution';
import { LoadedModel, type LoadedModelInfo, type ModelKey } from './model';

/** A model held for the duration of one request. Call `release()` exactly once (extra calls are ignored). */
export interface ModelLease {
  readonly model: LoadedModel;
  release(): void;
}

interface Entry {
  readonly model: LoadedModel;
  leases: number;
  retired: boolean;
}

/** Maps a registry error to an inference error (not-found → NOT_FOUND, corrupt → FAILED_PRECONDITION, invalid → INVALID_ARGUMENT). */
export function fromRegistryError(err: unknown): unknown {
  if (!(err instanceof RegistryError)) return err;
  if (err.kind === 'not-found') return InferenceError.notFound(err.message);
  if (err.kind === 'corrupt') return InferenceError.failedPrecondition(err.message, err);
  return InferenceError.invalidArgument(err.message);
}

export interface LoadOutcome {
  readonly info: LoadedModelInfo;
  /** The version this load replaced, if any. */
  readonly replaced: ModelKey | undefined;
  /** False when the requested version was already serving (nothing was reloaded). */
  readonly changed: boolean;
}

export class ModelPool {
  private readonly serving = new Map<string, Entry>();
  private readonly retiredEntries = new Set<Entry>();
  /** Per-name chain serialising loads and unloads of the same model. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(
    readonly registry: ModelRegistry,
    readonly sessionConfig: SessionConfig = DEFAULT_SESSION_CONFIG,
    /** Called with errors from releasing retired sessions (which no caller awaits). */
    private readonly onReleaseError: (err: unknown, key: ModelKey) => void = () => undefined,
  ) {}

  /**
   * Loads `name`:`version` (0 = the latest in the registry) and makes it the
   * serving version of `name`. Idempotent: the serving version is not reloaded.
   * On failure the previous version keeps serving. Loads of one name run one at
   * a time; different names load concurrently.
   */
  load(name: string, version: number): Promise<LoadOutcome> {
    return this.serialise(name, async () => {
      if (this.closed) throw InferenceError.failedPrecondition('the model pool is closed');
      let resolved;
      try {
        resolved = this.registry.get(name, version);
      } catch (err) {
        throw fromRegistryError(err);
      }
      const current = this.serving.get(name);
      if (current && current.model.key.version === resolved.meta.version) {
        return { info: current.model.info(), replaced: undefined, changed: false };
      }
      const model = await LoadedModel.load(resolved, this.sessionConfig);
      if (this.closed) {
        await model.dispose();
        throw InferenceError.failedPrecondition('the model pool closed while loading');
      }
      this.serving.set(name, { model, leases: 0, retired: false });
      if (current) this.retire(current);
      return { info: model.info(), replaced: current?.model.key, changed: true };
    });
  }

  /**
   * Stops serving `name` (when `version` is 0 or the serving version). Requests
   * holding a lease finish first. Returns whether something was unloaded.
   */
  unload(name: string, version: number): Promise<boolean> {
    return this.serialise(name, async () => {
      const current = this.serving.get(name);
      if (!current || (version !== 0 && current.model.key.version !== version)) return false;
      this.serving.delete(name);
      this.retire(current);
      return true;
    });
  }

  /**
   * A lease on the serving version of `name`. `version` 0 takes whatever serves;
   * another version must be the serving one. Throws NOT_FOUND for a model or
   * version the registry does not have, FAILED_PRECONDITION for one that exists
   * but is not loaded.
   */
  acquire(name: string, version: number): ModelLease {
    const entry = this.serving.get(name);
    if (entry && (version === 0 || entry.model.key.version === version)) {
      entry.leases++;
      let released = false;
      return {
        model: entry.model,
        release: () => {
          if (released) return;
          released = true;
          entry.leases--;
          if (entry.retired && entry.leases === 0) this.dispose(entry);
        },
      };
    }
    // Not serving: say whether it exists at all.
    let resolved: number;
    try {
      resolved = this.registry.resolve(name, version);
    } catch (err) {
      throw fromRegistryError(err);
    }
    const what = version === 0 ? `model ${name}` : `model ${name}:${resolved}`;
    const serving = entry ? ` (${name}:${entry.model.key.version} is serving)` : '';
    throw InferenceError.failedPrecondition(`${what} is not loaded${serving}; call LoadModel first`);
  }

  /**
   * Like {@link acquire}, but a version (≠ 0) that is registered and does not
   * serve is loaded first — a hot swap, as by {@link load}. This is what lets a
   * segmenter scale out: a LoadModel reaches one replica, and every other
   * replica loads that version from the shared registry at its first call for
   * it. Version 0 never loads (it means "whatever serves here"). Returns the
   * lease and, when this call loaded the version, the load's outcome.
   */
  async acquireLoading(name: string, version: number): Promise<{ lease: ModelLease; loaded: LoadOutcome | undefined }> {
    let loaded: LoadOutcome | undefined;
    // A load for another version may swap ours out between our load and our lease: try again, a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        return { lease: this.acquire(name, version), loaded };
      } catch (err) {
        const notServing = err instanceof InferenceError && err.kind === 'failed-precondition';
        if (!notServing || version === 0 || attempt >= 3) throw err;
      }
      const outcome = await this.load(name, version);
      if (outcome.changed) loaded = outcome;
    }
  }

  /** The serving models, by name. */
  loaded(): LoadedModelInfo[] {
    return [...this.serving.values()].map((e) => e.model.info()).sort((a, b) => a.key.name.localeCompare(b.key.name));
  }

  /** Serving version of `name`, if any. */
  servingVersion(name: string): number | undefined {
    return this.serving.get(name)?.model.key.version;
  }

  /** Sessions that were swapped out or unloaded but are still held by requests. */
  get retiredInUse(): number {
    return this.retiredEntries.size;
  }

  /** Stops serving everything; sessions are released as their last lease ends (now, when idle). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.queues.values()]);
    for (const entry of this.serving.values()) this.retire(entry);
    this.serving.clear();
  }

  private retire(entry: Entry): void {
    entry.retired = true;
    if (entry.leases === 0) this.dispose(entry);
    else this.retiredEntries.add(entry);
  }

  private dispose(entry: Entry): void {
    this.retiredEntries.delete(entry);
    entry.model.dispose().catch((err: unknown) => this.onReleaseError(err, entry.model.key));
  }

  private serialise<T>(name: string, task: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(name) ?? Promise.resolve();
    const next = previous.then(task, task);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(name, settled);
    void settled.then(() => {
      if (this.queues.get(name) === settled) this.queues.delete(name);
    });
    return next;
  }
}
