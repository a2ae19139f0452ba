import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, truncateSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@purify/artifacts';
import type { Trajectory, Transition } from '@purify/rl';
import { invalid, notFound } from './errors';
import { KeyedMutex } from './mutex';
import type { PolicyMetricsSnapshot, PolicyRef, RewardInput } from './types';
import { formatRef } from './validation';

/**
 * Decisions and experience, kept per policy version, persisted as an
 * append-only JSON-lines log: `<dir>/experience.log`.
 *
 * Durability: a request's records are encoded first, written with one write
 * and fsync'ed before the in-memory state changes and before the caller is
 * answered, so everything acknowledged survives a crash or restart. A crash in
 * the middle of a write can only leave a torn LAST line, which was never
 * acknowledged; opening drops it (and rewrites the log). A failed write is
 * truncated back to the previous length. Records:
 *
 *   {"k":"act", p, v, t, key, sh, ctx, rows:[{id,row,obs,a,lp,val,w,lvl[,rw,dn]}] [,nc]}  decisions
 *   {"k":"fb",  r:[[id, reward, done], …]}                                           rewards
 *   {"k":"exp", ids:[…]}                                                             dropped (TTL / cap)
 *   {"k":"use", ids:[…]}                                                             consumed by an update
 *   {"k":"cnt", p, v, c:{…}}                                                         metric counters baseline
 *
 * Compaction rewrites the log atomically (writeFileAtomic) as counter
 * baselines plus the decisions still buffered (`nc`: not counted again), when
 * it holds more than twice as many records as live decisions (plus 10 000),
 * and whenever opening found a torn tail.
 *
 * Buffer limits (per policy version): a decision that has no reward `ttlMs`
 * after it was made is expired — feedback for it is refused as unknown, and
 * it is dropped from memory and the log at the next sweep; when a version holds
 * more than `maxBuffered` unconsumed decisions (rewarded or not), the oldest
 * are dropped. Rewarded live decisions otherwise stay until an update consumes
 * them. Rewarded shadow decisions only feed the metrics and are dropped at once
 * (their actions were never applied, so they are not on-policy experience for
 * PPO).
 */

export interface ExperienceOptions {
  /** Unrewarded decisions older than this expire. */
  readonly ttlMs: number;
  /** Most unconsumed decisions kept per version; the oldest go first. */
  readonly maxBuffered: number;
  /** Prefix of every decision id this store issues (one store per replica). */
  readonly replicaId: string;
  readonly now: () => Date;
  /** Compact when the log holds more than 2 × live decisions + this many records (default 10 000). */
  readonly compactSlack?: number;
}

/** One observation row's decision as the policy made it. */
export interface DecisionRow {
  readonly row: number;
  /** [numFeatures] raw observation. */
  readonly observation: Float32Array;
  readonly action: number;
  readonly logProb: number;
  readonly value: number;
  readonly weight: number;
  readonly level: number;
}

/** The decisions of one version for one request. */
export interface DecisionGroup {
  readonly policy: PolicyRef;
  readonly routingKey: string;
  readonly shadow: boolean;
  readonly context: Readonly<Record<string, string>>;
  readonly rows: readonly DecisionRow[];
}

/** What an update was trained on (recorded as the new version's provenance). */
export interface DataSummary {
  readonly transitions: number;
  readonly trajectories: number;
  /** Trajectories that end with `done`. */
  readonly episodes: number;
  readonly rewardMean: number;
  readonly rewardMin: number;
  readonly rewardMax: number;
  readonly routingKeys: number;
  readonly firstDecisionAt: Date | undefined;
  readonly lastDecisionAt: Date | undefined;
}

export interface Collected {
  readonly trajectories: Trajectory[];
  /** Decision ids of every transition, to mark them consumed afterwards. */
  readonly ids: string[];
  readonly summary: DataSummary;
}

interface Decision {
  readonly id: string;
  readonly version: VersionBuffer;
  readonly key: string;
  readonly row: number;
  readonly obs: Float32Array;
  readonly action: number;
  readonly logProb: number;
  readonly value: number;
  readonly weight: number;
  readonly level: number;
  readonly shadow: boolean;
  /** ms since the epoch. */
  readonly t: number;
  readonly ctx: Readonly<Record<string, string>>;
  reward: number | undefined;
  done: boolean;
}

interface Counters {
  decisions: number;
  shadow: number;
  rewarded: number;
  rewardSum: number;
  hist: number[];
}

interface VersionBuffer {
  readonly ref: PolicyRef;
  /** Unconsumed decisions in decision order (Map keeps insertion order). */
  readonly decisions: Map<string, Decision>;
  counters: Counters;
  pending: number;
  /** Rewarded live decisions not yet consumed. */
  buffered: number;
}

interface ActRow {
  id: string;
  row: number;
  obs: number[];
  a: number;
  lp: number;
  val: number;
  w: number;
  lvl: number;
  rw?: number;
  dn?: boolean;
}

type LogRecord =
  | { k: 'act'; p: string; v: number; t: number; key: string; sh: boolean; ctx: Record<string, string>; rows: ActRow[]; nc?: boolean }
  | { k: 'fb'; r: [string, number, boolean][] }
  | { k: 'exp'; ids: string[] }
  | { k: 'use'; ids: string[] }
  | { k: 'cnt'; p: string; v: number; c: Counters };

export const HISTOGRAM_BINS = 10;

/** Bin of a weight in [0, 1] among 10 equal bins; 1 falls in the last bin. */
export function weightBin(w: number): number {
  return Math.min(HISTOGRAM_BINS - 1, Math.max(0, Math.floor(w * HISTOGRAM_BINS)));
}

const emptyCounters = (): Counters => ({ decisions: 0, shadow: 0, rewarded: 0, rewardSum: 0, hist: new Array<number>(HISTOGRAM_BINS).fill(0) });

export class ExperienceStore {
  private readonly versions = new Map<string, VersionBuffer>();
  private readonly byId = new Map<string, Decision>();
  private readonly mutex = new KeyedMutex();
  private readonly path: string;
  private handle: FileHandle | undefined;
  private logBytes = 0;
  private logRecords = 0;
  private live = 0;

  private constructor(
    dir: string,
    private readonly options: ExperienceOptions,
  ) {
    this.path = join(dir, 'experience.log');
  }

  /** Opens (creating) the log in `dir` and replays it. */
  static async open(dir: string, options: ExperienceOptions): Promise<ExperienceStore> {
    mkdirSync(dir, { recursive: true });
    const store = new ExperienceStore(dir, options);
    const torn = store.replay();
    if (torn || store.needsCompaction()) store.compact();
    store.handle = await open(store.path, 'a');
    return store;
  }

  /**
   * Records decisions; returns their ids, per group and row. Expired and
   * over-cap decisions are swept in the same write.
   */
  async record(groups: readonly DecisionGroup[]): Promise<string[][]> {
    return this.mutex.run('log', async () => {
      const t = this.options.now().getTime();
      // A shadow group deciding on the same rows as the live group gets the live ids + ".shadow",
      // so whoever can score the shadow's actions (offline evaluation) can address them.
      const liveIds = groups[0]?.rows.map(() => this.newId()) ?? [];
      const ids = groups.map((g, gi) => (gi === 0 ? liveIds : g.shadow && g.rows.length === liveIds.length ? liveIds.map((id) => `${id}.shadow`) : g.rows.map(() => this.newId())));
      const records: LogRecord[] = groups.map((g, gi) => ({
        k: 'act',
        p: g.policy.name,
        v: g.policy.version,
        t,
        key: g.routingKey,
        sh: g.shadow,
        ctx: { ...g.context },
        rows: g.rows.map((r, ri) => ({ id: ids[gi]?.[ri] as string, row: r.row, obs: Array.from(r.observation), a: r.action, lp: r.logProb, val: r.value, w: r.weight, lvl: r.level })),
      }));
      // Which decisions the sweep drops, counting the ones about to be added against the cap.
      const dropped = this.sweepCandidates(t, groups);
      if (dropped.length > 0) records.push({ k: 'exp', ids: dropped.map((d) => d.id) });
      await this.append(records);
      for (const r of records) this.apply(r);
      return ids;
    });
  }

  /**
   * Attaches rewards exactly once. The whole request is checked first; when
   * anything is wrong nothing changes. Returns the version each reward went
   * to (the one that made its decision), in the order of `rewards`.
   */
  async reward(rewards: readonly RewardInput[]): Promise<PolicyRef[]> {
    return this.mutex.run('log', async () => {
      if (rewards.length === 0) throw invalid('rewards', 'must hold at least one reward', []);
      const firstIndex = new Map<string, number>();
      rewards.forEach((r, i) => {
        if (r.decisionId.length === 0) throw invalid(`rewards[${i}].decision_id`, 'must be a decision id returned by Act', r.decisionId);
        if (!Number.isFinite(r.reward)) throw invalid(`rewards[${i}].reward`, 'must be a finite number', r.reward);
        const first = firstIndex.get(r.decisionId);
        if (first !== undefined) throw invalid(`rewards[${i}].decision_id`, `must be rewarded once per request (rewards[${first}] has the same id)`, r.decisionId);
        firstIndex.set(r.decisionId, i);
      });
      const cutoff = this.options.now().getTime() - this.options.ttlMs;
      const foreign: string[] = [];
      const unknown: string[] = [];
      const twice: string[] = [];
      for (const r of rewards) {
        const d = this.byId.get(r.decisionId);
        if (!r.decisionId.startsWith(`${this.options.replicaId}~`) && r.decisionId.includes('~')) foreign.push(r.decisionId);
        else if (!d || (d.reward === undefined && d.t < cutoff)) unknown.push(r.decisionId);
        else if (d.reward !== undefined) twice.push(r.decisionId);
      }
      if (foreign.length > 0) {
        throw notFound(`decision ids issued by another agent replica (send feedback to the replica that decided; this is "${this.options.replicaId}"): ${foreign.join(', ')}`);
      }
      if (unknown.length > 0) throw notFound(`unknown decision ids (never issued, expired without a reward, or consumed by an update): ${unknown.join(', ')}`);
      if (twice.length > 0) throw invalid('rewards[].decision_id', 'must not be rewarded twice; already rewarded', twice.join(', '));
      const record: LogRecord = { k: 'fb', r: rewards.map((r) => [r.decisionId, r.reward, r.done]) };
      const versions = rewards.map((r) => (this.byId.get(r.decisionId) as Decision).version.ref);
      await this.append([record]);
      this.apply(record);
      return versions;
    });
  }

  /**
   * Trajectories of a version's rewarded live experience. A trajectory is a
   * maximal run of consecutive rewarded decisions for the same (routing key,
   * observation row), in decision order; `done` ends it, and so does an
   * unrewarded decision of the same key and row (the chain is broken there; the
   * run is bootstrapped from its last value). Trajectories are ordered by their
   * first decision.
   */
  collect(ref: PolicyRef): Collected {
    const buf = this.versions.get(formatRef(ref));
    const finished: { first: number; items: Decision[] }[] = [];
    const open = new Map<string, { first: number; items: Decision[] }>();
    let seq = 0;
    const close = (group: string): void => {
      const run = open.get(group);
      if (run && run.items.length > 0) finished.push(run);
      open.delete(group);
    };
    for (const d of buf?.decisions.values() ?? []) {
      seq++;
      if (d.shadow) continue;
      const group = `${d.key}\u0000${d.row}`;
      if (d.reward === undefined) {
        close(group);
        continue;
      }
      let run = open.get(group);
      if (!run) {
        run = { first: seq, items: [] };
        open.set(group, run);
      }
      run.items.push(d);
      if (d.done) close(group);
    }
    for (const group of [...open.keys()]) close(group);
    finished.sort((a, b) => a.first - b.first);
    const trajectories = finished.map((run) =>
      run.items.map((d): Transition => ({ observation: d.obs, action: d.action, logProb: d.logProb, value: d.value, reward: d.reward as number, done: d.done })),
    );
    const all = finished.flatMap((run) => run.items);
    const rewards = all.map((d) => d.reward as number);
    const times = all.map((d) => d.t);
    return {
      trajectories,
      ids: all.map((d) => d.id),
      summary: {
        transitions: all.length,
        trajectories: finished.length,
        episodes: finished.filter((run) => run.items[run.items.length - 1]?.done).length,
        rewardMean: rewards.length > 0 ? rewards.reduce((a, b) => a + b, 0) / rewards.length : 0,
        rewardMin: rewards.length > 0 ? Math.min(...rewards) : 0,
        rewardMax: rewards.length > 0 ? Math.max(...rewards) : 0,
        routingKeys: new Set(all.map((d) => d.key)).size,
        firstDecisionAt: times.length > 0 ? new Date(Math.min(...times)) : undefined,
        lastDecisionAt: times.length > 0 ? new Date(Math.max(...times)) : undefined,
      },
    };
  }

  /** Marks decisions consumed by an update (they leave the buffer). */
  async consume(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.mutex.run('log', async () => {
      const record: LogRecord = { k: 'use', ids: ids.filter((id) => this.byId.has(id)) };
      await this.append([record]);
      this.apply(record);
      if (this.needsCompaction()) await this.compactOpen();
    });
  }

  /** Rewarded live transitions of `ref` not yet consumed. */
  buffered(ref: PolicyRef): number {
    return this.versions.get(formatRef(ref))?.buffered ?? 0;
  }

  metrics(ref: PolicyRef): PolicyMetricsSnapshot {
    const buf = this.versions.get(formatRef(ref));
    const c = buf?.counters ?? emptyCounters();
    return {
      ref: { name: ref.name, version: ref.version },
      decisions: c.decisions,
      rewarded: c.rewarded,
      meanReward: c.rewarded > 0 ? c.rewardSum / c.rewarded : 0,
      weightHistogram: [...c.hist],
      shadowDecisions: c.shadow,
      pending: buf?.pending ?? 0,
      buffered: buf?.buffered ?? 0,
    };
  }

  async close(): Promise<void> {
    await this.mutex.run('log', async () => {
      await this.handle?.close();
      this.handle = undefined;
    });
  }

  private needsCompaction(): boolean {
    return this.logRecords > 2 * this.live + (this.options.compactSlack ?? 10_000);
  }

  private newId(): string {
    return `${this.options.replicaId}~${randomBytes(12).toString('base64url')}`;
  }

  private buffer(ref: PolicyRef): VersionBuffer {
    const key = formatRef(ref);
    let buf = this.versions.get(key);
    if (!buf) {
      buf = { ref: { name: ref.name, version: ref.version }, decisions: new Map(), counters: emptyCounters(), pending: 0, buffered: 0 };
      this.versions.set(key, buf);
    }
    return buf;
  }

  /** Unrewarded decisions past the TTL, and the oldest beyond the cap once `adding` is recorded. */
  private sweepCandidates(now: number, adding: readonly DecisionGroup[]): Decision[] {
    const cutoff = now - this.options.ttlMs;
    const incoming = new Map<string, number>();
    for (const g of adding) incoming.set(formatRef(g.policy), (incoming.get(formatRef(g.policy)) ?? 0) + g.rows.length);
    const out: Decision[] = [];
    for (const [key, buf] of this.versions) {
      let excess = buf.decisions.size + (incoming.get(key) ?? 0) - this.options.maxBuffered;
      for (const d of buf.decisions.values()) {
        if (excess > 0) {
          out.push(d);
          excess--;
        } else if (d.reward === undefined && d.t < cutoff) out.push(d);
        else if (d.t >= cutoff) break;
      }
    }
    return out;
  }

  private async append(records: readonly LogRecord[]): Promise<void> {
    const text = records.map((r) => `${JSON.stringify(r)}\n`).join('');
    const bytes = Buffer.from(text, 'utf8');
    if (!this.handle) throw new Error(`experience log ${this.path} is closed`);
    const before = this.logBytes;
    try {
      let offset = 0;
      while (offset < bytes.length) offset += (await this.handle.write(bytes, offset, bytes.length - offset)).bytesWritten;
      await this.handle.sync();
    } catch (err) {
      // Leave no partial record for the next append to run into.
      try {
        truncateSync(this.path, before);
      } catch {
        // The open at the next start drops a torn tail anyway.
      }
      throw err;
    }
    this.logBytes = before + bytes.length;
    this.logRecords += records.length;
  }

  /** Applies one record to memory (the same code replays the log). */
  private apply(r: LogRecord): void {
    switch (r.k) {
      case 'act': {
        const buf = this.buffer({ name: r.p, version: r.v });
        for (const row of r.rows) {
          const d: Decision = {
            id: row.id,
            version: buf,
            key: r.key,
            row: row.row,
            obs: Float32Array.from(row.obs),
            action: row.a,
            logProb: row.lp,
            value: row.val,
            weight: row.w,
            level: row.lvl,
            shadow: r.sh,
            t: r.t,
            ctx: r.ctx,
            reward: row.rw,
            done: row.dn ?? false,
          };
          buf.decisions.set(d.id, d);
          this.byId.set(d.id, d);
          this.live++;
          if (d.reward === undefined) buf.pending++;
          else if (!d.shadow) buf.buffered++;
          if (!r.nc) {
            if (r.sh) buf.counters.shadow++;
            else buf.counters.decisions++;
            (buf.counters.hist[weightBin(row.w)] as number)++;
          }
        }
        break;
      }
      case 'fb':
        for (const [id, reward, done] of r.r) {
          const d = this.byId.get(id);
          if (!d || d.reward !== undefined) continue;
          d.reward = reward;
          d.done = done;
          d.version.pending--;
          d.version.counters.rewarded++;
          d.version.counters.rewardSum += reward;
          if (d.shadow) this.remove(d, true);
          else d.version.buffered++;
        }
        break;
      case 'exp':
      case 'use':
        for (const id of r.ids) {
          const d = this.byId.get(id);
          if (d) this.remove(d, false);
        }
        break;
      case 'cnt':
        this.buffer({ name: r.p, version: r.v }).counters = { ...r.c, hist: [...r.c.hist] };
        break;
    }
  }

  private remove(d: Decision, alreadyUncounted: boolean): void {
    if (!alreadyUncounted) {
      if (d.reward === undefined) d.version.pending--;
      else if (!d.shadow) d.version.buffered--;
    }
    d.version.decisions.delete(d.id);
    this.byId.delete(d.id);
    this.live--;
  }

  /** Reads the log; returns true when its last line was torn (and dropped). */
  private replay(): boolean {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    const lines = text.split('\n');
    const tail = lines.pop() ?? '';
    lines.forEach((line, i) => {
      if (line.length === 0) return;
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch (err) {
        throw new Error(`experience log ${this.path} line ${i + 1} is not a JSON record (${(err as Error).message}); the log is damaged`);
      }
      this.apply(record);
      this.logRecords++;
    });
    this.logBytes = Buffer.byteLength(text, 'utf8') - Buffer.byteLength(tail, 'utf8');
    return tail.length > 0;
  }

  /** The log reduced to counter baselines plus the live decisions. */
  private compactedText(): string {
    const out: LogRecord[] = [];
    for (const buf of this.versions.values()) {
      out.push({ k: 'cnt', p: buf.ref.name, v: buf.ref.version, c: buf.counters });
      for (const d of buf.decisions.values()) {
        const row: ActRow = { id: d.id, row: d.row, obs: Array.from(d.obs), a: d.action, lp: d.logProb, val: d.value, w: d.weight, lvl: d.level };
        if (d.reward !== undefined) {
          row.rw = d.reward;
          row.dn = d.done;
        }
        out.push({ k: 'act', p: buf.ref.name, v: buf.ref.version, t: d.t, key: d.key, sh: d.shadow, ctx: { ...d.ctx }, rows: [row], nc: true });
      }
    }
    this.logRecords = out.length;
    return out.map((r) => `${JSON.stringify(r)}\n`).join('');
  }

  private compact(): void {
    const text = this.compactedText();
    writeFileAtomic(this.path, text);
    this.logBytes = Buffer.byteLength(text, 'utf8');
  }

  private async compactOpen(): Promise<void> {
    await this.handle?.close();
    this.compact();
    this.handle = await open(this.path, 'a');
  }
}
