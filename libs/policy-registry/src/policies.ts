import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { syncDirectory, writeFileAtomic, writeJsonAtomic } from '@purify/artifacts';
import type { Policy, PolicySpec } from '@purify/rl';
import { failedPrecondition, invalid, notFound } from './errors';
import { KeyedMutex } from './mutex';
import { PolicyStage, type AgentPolicySpec, type PolicyFactory, type PolicyRecord, type PolicyRef, type VersionMetric } from './types';
import { checkName, checkRef, checkSpec, formatRef, sameNetwork } from './validation';

/**
 * The policy registry on the artifact store:
 *
 *   <root>/policies/<name>/v<N>/meta.json     immutable: spec, parent, provenance, metrics, created time
 *   <root>/policies/<name>/v<N>/weights.bin   immutable: the bytes of `policy.serialize()`
 *   <root>/policies/<name>/state.json         mutable: {promoted, archived[]} — the stages
 *
 * A version folder is built complete under a hidden temporary name and renamed
 * into place, so it appears whole or not at all; rename(2) refuses a non-empty
 * target, which makes the rename the claim on the number N: two writers (even
 * two replicas on one store) never get the same version, and numbers stay
 * consecutive (a crash leaves only a hidden `.tmp-*` folder, ignored). Stages
 * live in one small file written atomically, so "exactly one promoted version
 * per name" holds by construction. Every read re-checks the name's folder and
 * state file (inode, size, mtime) and reloads them when another process
 * changed them; stage changes from two replicas at once are last-writer-wins.
 */

interface MetaFile {
  readonly format: 1;
  readonly name: string;
  readonly version: number;
  readonly parentVersion: number;
  readonly spec: AgentPolicySpec;
  readonly provenance: Record<string, string>;
  readonly metrics: VersionMetric[];
  readonly createdAt: string;
}

interface StateFile {
  readonly promoted: number;
  readonly archived: number[];
  readonly updatedAt: string;
}

interface NameCache {
  signature: string;
  metas: Map<number, MetaFile>;
  state: StateFile;
}

export interface RegisterInput {
  readonly name: string;
  readonly spec: AgentPolicySpec;
  readonly provenance?: Readonly<Record<string, string>>;
  /** Serialized weights to import; absent = a fresh policy from `spec` (its seed). */
  readonly weights?: Uint8Array;
  /** An already-built policy (an update's result); takes precedence over `weights`. */
  readonly policy?: Policy;
  readonly parentVersion?: number;
  readonly metrics?: readonly VersionMetric[];
  /** Promote right away (the first version of a name is always promoted). */
  readonly promote?: boolean;
}

export interface ListFilter {
  /** Only this name; empty/undefined = every name. */
  readonly name?: string;
  readonly includeArchived?: boolean;
}

const EMPTY_STATE: StateFile = { promoted: 0, archived: [], updatedAt: new Date(0).toISOString() };
const MAX_PROVENANCE_ENTRIES = 256;

/** The RL library's part of a spec (what `createPolicy` takes). */
export function rlSpec(spec: AgentPolicySpec): PolicySpec {
  return { actionSpace: spec.actionSpace, weightLevels: spec.weightLevels, hiddenUnits: spec.hiddenUnits, numFeatures: spec.numFeatures, seed: spec.seed };
}

export class PolicyRegistry {
  private readonly dir: string;
  private readonly cache = new Map<string, NameCache>();
  /** Loaded networks by "name:version"; disposed on archive and close. */
  private readonly loaded = new Map<string, Policy>();
  private readonly mutex = new KeyedMutex();

  constructor(
    root: string,
    private readonly factory: PolicyFactory,
    private readonly now: () => Date = () => new Date(),
    /**
     * Called with a name's promoted version when a read first sees it (> 0) or
     * sees it change (0 = none any more): writes by this process and by other
     * replicas alike, since every read re-checks the state file. Must not throw.
     */
    private readonly onPromotedChange?: (ref: PolicyRef) => void,
  ) {
    this.dir = join(root, 'policies');
    mkdirSync(this.dir, { recursive: true });
  }

  /** Registers a new version of `name` (version 1 when the name is new). */
  async register(input: RegisterInput): Promise<PolicyRecord> {
    checkName(input.name, 'name');
    const spec = checkSpec(input.spec);
    const provenance = checkProvenance(input.provenance ?? {});
    return this.mutex.run(`name:${input.name}`, () => {
      let policy = input.policy;
      let owned = false;
      if (!policy && input.weights && input.weights.length > 0) {
        try {
          policy = this.factory.deserialize(input.weights);
        } catch (err) {
          throw invalid('weights', `must be serialized policy weights (${err instanceof Error ? err.message : String(err)})`, `${input.weights.length} bytes`);
        }
        owned = true;
      }
      if (!policy) {
        policy = this.factory.create(rlSpec(spec));
        owned = true;
      }
      try {
        if (!sameNetwork(policy.spec, spec)) {
          throw invalid('weights', `must hold a policy with the given spec (${describeSpec(spec)})`, describeSpec(policy.spec));
        }
        const bytes = policy.serialize();
        const names = this.refresh(input.name);
        const first = names.metas.size === 0;
        const meta = this.writeVersion(input.name, (names.metas.size === 0 ? 0 : Math.max(...names.metas.keys())) + 1, {
          parentVersion: input.parentVersion ?? 0,
          spec,
          provenance,
          metrics: [...(input.metrics ?? [])],
          createdAt: this.now().toISOString(),
        }, bytes);
        const cache = this.refresh(input.name);
        if (first || input.promote) this.writeState(input.name, { ...cache.state, promoted: meta.version });
        this.loaded.set(formatRef(meta), policy);
        owned = false;
        return this.record(this.refresh(input.name), meta.version);
      } finally {
        if (owned) policy.dispose();
      }
    });
  }

  /** Versions, oldest first within a name, names in alphabetical order. */
  list(filter: ListFilter = {}): PolicyRecord[] {
    const names = filter.name ? [checkName(filter.name, 'name')] : this.names();
    const out: PolicyRecord[] = [];
    for (const name of names) {
      const cache = this.refresh(name);
      for (const version of [...cache.metas.keys()].sort((a, b) => a - b)) {
        const rec = this.record(cache, version);
        if (filter.includeArchived || rec.stage !== PolicyStage.Archived) out.push(rec);
      }
    }
    return out;
  }

  /** The version `ref` names (version 0 = the promoted one). */
  get(ref: PolicyRef, field = 'ref'): PolicyRecord {
    checkRef(ref, field);
    const cache = this.refresh(ref.name);
    if (cache.metas.size === 0) throw notFound(`policy "${ref.name}" is not registered`);
    if (ref.version === 0) {
      if (cache.state.promoted === 0) throw failedPrecondition(`policy "${ref.name}" has no promoted version (promote one, or name a version)`);
      return this.record(cache, cache.state.promoted);
    }
    if (!cache.metas.has(ref.version)) {
      throw notFound(`policy ${formatRef(ref)} does not exist (versions 1..${Math.max(...cache.metas.keys())})`);
    }
    return this.record(cache, ref.version);
  }

  /** Makes `ref` the promoted version of its name; the previous one becomes a candidate. */
  async promote(ref: PolicyRef, field = 'ref'): Promise<PolicyRecord> {
    return this.mutex.run(`name:${ref.name}`, () => {
      const rec = this.get(ref, field);
      if (rec.stage === PolicyStage.Archived) throw failedPrecondition(`policy ${formatRef(rec)} is archived and cannot be promoted`);
      const cache = this.refresh(rec.name);
      if (cache.state.promoted !== rec.version) this.writeState(rec.name, { ...cache.state, promoted: rec.version });
      return this.record(this.refresh(rec.name), rec.version);
    });
  }

  /** Archives `ref` (idempotent). An archived promoted version leaves its name without a promoted one. */
  async archive(ref: PolicyRef, field = 'ref'): Promise<PolicyRecord> {
    return this.mutex.run(`name:${ref.name}`, () => {
      const rec = this.get(ref, field);
      const cache = this.refresh(rec.name);
      if (rec.stage !== PolicyStage.Archived) {
        this.writeState(rec.name, {
          ...cache.state,
          promoted: cache.state.promoted === rec.version ? 0 : cache.state.promoted,
          archived: [...cache.state.archived, rec.version].sort((a, b) => a - b),
        });
      }
      const key = formatRef(rec);
      this.loaded.get(key)?.dispose();
      this.loaded.delete(key);
      return this.record(this.refresh(rec.name), rec.version);
    });
  }

  /** The network of a version, loaded from its weights on first use. */
  policy(rec: PolicyRef): Policy {
    const key = formatRef(rec);
    let policy = this.loaded.get(key);
    if (!policy) {
      const path = join(this.versionDir(rec.name, rec.version), 'weights.bin');
      policy = this.factory.deserialize(new Uint8Array(readFileSync(path)));
      this.loaded.set(key, policy);
    }
    return policy;
  }

  /** Re-reads every name (what changed on disk), reporting promoted versions to `onPromotedChange`. */
  refreshAll(): void {
    for (const name of this.names()) this.refresh(name);
  }

  /** Releases every loaded network. */
  close(): void {
    for (const policy of this.loaded.values()) policy.dispose();
    this.loaded.clear();
  }

  private names(): string[] {
    return readdirSync(this.dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  }

  private nameDir(name: string): string {
    return join(this.dir, name);
  }

  private versionDir(name: string, version: number): string {
    return join(this.nameDir(name), `v${version}`);
  }

  /** Cached view of one name, reloaded when its folder or state file changed on disk. */
  private refresh(name: string): NameCache {
    const signature = `${fileSignature(this.nameDir(name))}|${fileSignature(join(this.nameDir(name), 'state.json'))}`;
    const cached = this.cache.get(name);
    if (cached && cached.signature === signature) return cached;
    const metas = new Map<number, MetaFile>();
    for (const entry of safeReaddir(this.nameDir(name))) {
      const m = /^v([1-9]\d*)$/.exec(entry);
      if (!m) continue;
      const meta = readJson<MetaFile>(join(this.nameDir(name), entry, 'meta.json'));
      if (meta) metas.set(Number(m[1]), meta);
    }
    const state = readJson<StateFile>(join(this.nameDir(name), 'state.json')) ?? EMPTY_STATE;
    const fresh = { signature, metas, state };
    this.cache.set(name, fresh);
    if (state.promoted !== (cached?.state.promoted ?? 0)) this.onPromotedChange?.({ name, version: state.promoted });
    return fresh;
  }

  private writeVersion(name: string, firstTry: number, body: Omit<MetaFile, 'format' | 'name' | 'version'>, weights: Uint8Array): MetaFile {
    const tmp = join(this.nameDir(name), `.tmp-${randomBytes(6).toString('hex')}`);
    mkdirSync(tmp, { recursive: true });
    try {
      writeFileAtomic(join(tmp, 'weights.bin'), weights);
      for (let version = firstTry; version < firstTry + 1000; version++) {
        const meta: MetaFile = { format: 1, name, version, ...body };
        writeJsonAtomic(join(tmp, 'meta.json'), meta);
        try {
          renameSync(tmp, this.versionDir(name, version));
          syncDirectory(this.nameDir(name));
          return meta;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // Another writer took this number first: try the next one.
          if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
        }
      }
      throw new Error(`could not claim a version number for policy "${name}" after 1000 attempts`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  private writeState(name: string, state: Omit<StateFile, 'updatedAt'>): void {
    writeJsonAtomic(join(this.nameDir(name), 'state.json'), { ...state, updatedAt: this.now().toISOString() });
  }

  private record(cache: NameCache, version: number): PolicyRecord {
    const meta = cache.metas.get(version);
    if (!meta) throw new Error(`policy version ${version} vanished from the registry`);
    const stage = cache.state.archived.includes(version)
      ? PolicyStage.Archived
      : cache.state.promoted === version
        ? PolicyStage.Promoted
        : PolicyStage.Candidate;
    return {
      name: meta.name,
      version: meta.version,
      spec: meta.spec,
      stage,
      parentVersion: meta.parentVersion,
      provenance: meta.provenance,
      metrics: meta.metrics,
      createdAt: new Date(meta.createdAt),
    };
  }
}

function checkProvenance(p: Readonly<Record<string, string>>): Record<string, string> {
  const entries = Object.entries(p);
  if (entries.length > MAX_PROVENANCE_ENTRIES) throw invalid('provenance', `must have at most ${MAX_PROVENANCE_ENTRIES} entries`, entries.length);
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > 128) throw invalid('provenance', 'keys must be 1..128 characters', k);
    if (v.length > 4096) throw invalid(`provenance["${k}"]`, 'must be at most 4096 characters', `${v.length} characters`);
  }
  return Object.fromEntries(entries);
}

function describeSpec(s: Omit<AgentPolicySpec, 'featureSchemaVersion'>): string {
  return `${s.actionSpace}, ${s.numFeatures} features, hidden [${s.hiddenUnits.join(', ')}], levels [${s.weightLevels.join(', ')}]`;
}

/** inode, size and mtime of a path ("-" when missing): changes whenever a file is replaced by rename. */
export function fileSignature(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false, bigint: true });
  return st ? `${st.ino}:${st.size}:${st.mtimeNs}` : '-';
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readJson<T>(path: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  return JSON.parse(text) as T;
}
