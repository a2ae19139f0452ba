import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '@purify/artifacts';
import { alreadyExists, failedPrecondition, invalid, notFound } from './errors';
import { KeyedMutex } from './mutex';
import { fileSignature, type PolicyRegistry } from './policies';
import { PolicyStage, type Experiment, type ExperimentArm } from './types';
import { checkName, checkRef, formatRef } from './validation';

/**
 * A/B experiments on the artifact store, one JSON file each:
 * `<root>/experiments/<name>.json`. Creation is create-if-absent across
 * processes (the complete file is hard-linked into place, which fails when the
 * name exists); updates replace the file atomically. Consistency between
 * replicas sharing the store: every read compares the file's inode, size and
 * mtime with the cached copy and re-reads it when any changed, so a weight
 * change is seen by every replica at its next request; two concurrent updates
 * from different replicas are last-writer-wins.
 */

/** Live weights must sum to 1 within this tolerance. */
export const WEIGHT_SUM_TOLERANCE = 1e-6;

interface ExperimentFile {
  readonly format: 1;
  readonly name: string;
  readonly arms: ExperimentArm[];
  readonly active: boolean;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly salt: string;
}

export interface ExperimentUpdate {
  /** New arms; empty = keep the current arms. */
  readonly arms: readonly ExperimentArm[];
  readonly active: boolean;
}

export class ExperimentStore {
  private readonly dir: string;
  private readonly cache = new Map<string, { signature: string; experiment: Experiment }>();
  private readonly mutex = new KeyedMutex();

  constructor(
    root: string,
    private readonly registry: PolicyRegistry,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.dir = join(root, 'experiments');
    mkdirSync(this.dir, { recursive: true });
  }

  async create(name: string, arms: readonly ExperimentArm[]): Promise<Experiment> {
    checkName(name, 'name');
    const checked = this.checkArms(arms);
    return this.mutex.run(name, () => {
      const at = this.now().toISOString();
      const file: ExperimentFile = { format: 1, name, arms: checked, active: true, createdAt: at, updatedAt: at, salt: randomBytes(8).toString('hex') };
      const tmp = join(this.dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
      writeFileAtomic(tmp, `${JSON.stringify(file, null, 2)}\n`);
      try {
        linkSync(tmp, this.path(name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists(`experiment "${name}" already exists (change it with UpdateExperiment)`);
        throw err;
      } finally {
        rmSync(tmp, { force: true });
      }
      return this.get(name);
    });
  }

  /** Replaces the arms (when given) and sets `active`; salt and creation time stay. */
  async update(name: string, change: ExperimentUpdate): Promise<Experiment> {
    checkName(name, 'name');
    const checked = change.arms.length > 0 ? this.checkArms(change.arms) : undefined;
    return this.mutex.run(name, () => {
      const current = this.get(name);
      const file: ExperimentFile = {
        format: 1,
        name,
        arms: checked ?? [...current.arms],
        active: change.active,
        createdAt: current.createdAt.toISOString(),
        updatedAt: this.now().toISOString(),
        salt: current.salt,
      };
      writeJsonAtomic(this.path(name), file);
      return this.get(name);
    });
  }

  get(name: string, field = 'name'): Experiment {
    checkName(name, field);
    const path = this.path(name);
    const signature = fileSignature(path);
    const cached = this.cache.get(name);
    if (cached && cached.signature === signature) return cached.experiment;
    if (signature === '-') {
      this.cache.delete(name);
      throw notFound(`experiment "${name}" does not exist`);
    }
    const file = JSON.parse(readFileSync(path, 'utf8')) as ExperimentFile;
    const experiment: Experiment = {
      name: file.name,
      arms: file.arms,
      active: file.active,
      createdAt: new Date(file.createdAt),
      updatedAt: new Date(file.updatedAt),
      salt: file.salt,
    };
    this.cache.set(name, { signature, experiment });
    return experiment;
  }

  /** Every experiment, by name. */
  list(): Experiment[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => f.slice(0, -'.json'.length))
      .sort()
      .map((name) => this.get(name));
  }

  private path(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  /** Validates arms against the registry; returns normalised copies. */
  private checkArms(arms: readonly ExperimentArm[]): ExperimentArm[] {
    if (arms.length === 0) throw invalid('arms', 'must list at least one arm', []);
    const seen = new Map<string, number>();
    let shadowAt = -1;
    let schema: { at: number; features: number; version: string } | undefined;
    const out = arms.map((arm, i) => {
      checkName(arm.name, `arms[${i}].name`);
      const first = seen.get(arm.name);
      if (first !== undefined) throw invalid(`arms[${i}].name`, `must be unique (arms[${first}] has the same name)`, arm.name);
      seen.set(arm.name, i);
      checkRef(arm.policy, `arms[${i}].policy`);
      const rec = this.registry.get(arm.policy, `arms[${i}].policy`);
      if (rec.stage === PolicyStage.Archived) throw failedPrecondition(`\`arms[${i}].policy\` names policy ${formatRef(rec)}, which is archived`);
      if (!schema) schema = { at: i, features: rec.spec.numFeatures, version: rec.spec.featureSchemaVersion };
      else if (rec.spec.numFeatures !== schema.features || rec.spec.featureSchemaVersion !== schema.version) {
        throw invalid(
          `arms[${i}].policy`,
          `must read the same observations as arms[${schema.at}] (schema ${JSON.stringify(schema.version)}, ${schema.features} features)`,
          `${formatRef(rec)} with schema ${JSON.stringify(rec.spec.featureSchemaVersion)}, ${rec.spec.numFeatures} features`,
        );
      }
      if (!Number.isFinite(arm.weight) || arm.weight < 0 || arm.weight > 1) throw invalid(`arms[${i}].weight`, 'must be a finite number in [0, 1]', arm.weight);
      if (arm.shadow) {
        if (shadowAt >= 0) throw invalid(`arms[${i}].shadow`, `must be false: only one shadow arm is allowed (arms[${shadowAt}] is one)`, true);
        shadowAt = i;
      }
      return { name: arm.name, policy: { name: arm.policy.name, version: arm.policy.version }, weight: arm.weight, shadow: arm.shadow };
    });
    const live = out.filter((a) => !a.shadow);
    if (live.length === 0) throw invalid('arms', 'must have at least one live (non-shadow) arm', `${out.length} shadow arm(s)`);
    const sum = live.reduce((s, a) => s + a.weight, 0);
    if (Math.abs(sum - 1) > WEIGHT_SUM_TOLERANCE) {
      throw invalid('arms[].weight', `of the live arms must sum to 1 (±${WEIGHT_SUM_TOLERANCE})`, `${sum} (${live.map((a) => `${a.name}=${a.weight}`).join(' + ')})`);
    }
    return out;
  }
}
