/**
 * The job manager: accepts jobs (idempotent by id), runs them one at a time in
 * creation order, streams their events, cancels them at the next safe point,
 * and on start resumes every job a previous process left PENDING or RUNNING
 * from its last round checkpoint.
 *
 * States: PENDING → RUNNING → SUCCEEDED | FAILED | CANCELLED. A server that
 * shuts down mid-job leaves it RUNNING on disk (that is what makes the next
 * server resume it). A FAILED or CANCELLED job is resumed by StartJob with the
 * same id and spec.
 *
 * Metrics: `purify_queue_depth{purify_queue="jobs"}` is the number of PENDING
 * jobs (waiting; the one RUNNING is not counted), recorded whenever it may have
 * changed; every training step records `purify_training_step_duration` under
 * the job's model name (see {@link stepModelLabel}).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { JobSpec, JobState, Job, type JobEvent, type RoundSnapshot as RoundSnapshotMessage } from '@purify/proto';
import { ErrorCode, PurifyError, redactForLog, serviceMetrics, type Logger } from '@purify/runtime';
import type { RoundReport, RoundSnapshot, StepReport, WeightStatistics } from '@purify/adaptation';
import { checkSpec, type CheckedSpec } from './job-spec';
import { runJob, type RunnerSettings } from './job-runner';
import { JobStore } from './job-store';

const TERMINAL = new Set<JobState>([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]);

export function isTerminal(state: JobState): boolean {
  return TERMINAL.has(state);
}

interface Entry {
  job: Job;
  events: JobEvent[];
  checked: CheckedSpec | undefined;
  abort: AbortController | undefined;
  /** Why it was aborted: a user's cancel (→ CANCELLED) or the server stopping (→ stays RUNNING). */
  abortKind: 'cancel' | 'shutdown' | undefined;
  cancelReason: string;
}

/** The spec as stored and compared (job id filled in). */
function specKey(spec: JobSpec): string {
  return JSON.stringify(JobSpec.toJSON(spec));
}

/**
 * The `purify_model_name` of a job's training steps: its `output_model`, else
 * the name of its `init_model`, else none. Never the job id (the default output
 * name `adapted-<job id>` would make one series per job).
 */
function stepModelLabel(spec: JobSpec): { name: string } | undefined {
  const name = spec.outputModel !== '' ? spec.outputModel : (spec.initModel?.name ?? '');
  return name === '' ? undefined : { name };
}

export class JobManager {
  private readonly store: JobStore;
  private readonly jobs = new Map<string, Entry>();
  private readonly live = new EventEmitter();
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(
    private readonly settings: RunnerSettings,
    private readonly logger: Logger,
  ) {
    this.store = new JobStore(settings.artifactsDir);
    this.live.setMaxListeners(0);
  }

  /** Loads the jobs on disk; unfinished ones are queued to resume. */
  open(): void {
    for (const { job, events } of this.store.loadAll()) {
      const entry: Entry = { job, events, checked: undefined, abort: undefined, abortKind: undefined, cancelReason: '' };
      this.jobs.set(job.jobId, entry);
      if (job.state === JobState.JOB_STATE_RUNNING) {
        job.resumes += 1;
        this.setState(entry, JobState.JOB_STATE_PENDING, 'resuming from the last checkpoint after a restart');
      }
    }
    this.recordQueueDepth();
    this.kick();
  }

  list(states: readonly JobState[]): Job[] {
    return [...this.jobs.values()].map((e) => e.job).filter((j) => states.length === 0 || states.includes(j.state)).sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0));
  }

  get(id: string): Job {
    return this.entry(id).job;
  }

  private entry(id: string): Entry {
    const e = this.jobs.get(id);
    if (e === undefined) throw PurifyError.notFound(`job "${id}" does not exist`);
    return e;
  }

  /** StartJob: validates, then creates, returns the existing job (same spec) or resumes a failed/cancelled one. */
  start(raw: JobSpec): Job {
    const id = raw.jobId === '' ? `job-${new Date().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}` : raw.jobId;
    const spec: JobSpec = { ...raw, jobId: id };
    const checked = checkSpec(spec, this.settings.artifactsDir);
    const existing = this.jobs.get(id);
    if (existing !== undefined) {
      if (existing.job.spec === undefined || specKey(existing.job.spec) !== specKey(spec)) {
        throw new PurifyError(ErrorCode.AlreadyExists, `job "${id}" already exists with a different spec; choose another job_id`);
      }
      existing.checked = checked;
      if (existing.job.state === JobState.JOB_STATE_FAILED || existing.job.state === JobState.JOB_STATE_CANCELLED) {
        existing.job.resumes += 1;
        this.setState(existing, JobState.JOB_STATE_PENDING, `resumed by StartJob after ${JobState[existing.job.state]}`);
        this.kick();
      }
      return existing.job;
    }
    const now = new Date();
    const job: Job = {
      jobId: id,
      spec,
      state: JobState.JOB_STATE_PENDING,
      progress: { round: 0, rounds: checked.hyperparameters.rounds, step: 0, steps: checked.hyperparameters.stepsPerRound },
      message: '',
      resultModel: undefined,
      metrics: [],
      createdAt: now,
      updatedAt: now,
      policy: undefined,
      resumes: 0,
    };
    const entry: Entry = { job, events: [], checked, abort: undefined, abortKind: undefined, cancelReason: '' };
    this.jobs.set(id, entry);
    this.store.save(job);
    this.emit(entry, { $case: 'state', state: JobState.JOB_STATE_PENDING });
    this.recordQueueDepth();
    this.kick();
    return job;
  }

  cancel(id: string, reason: string): Job {
    const e = this.entry(id);
    if (isTerminal(e.job.state)) return e.job;
    e.cancelReason = reason || 'cancelled by the client';
    if (e.job.state === JobState.JOB_STATE_PENDING && e.abort === undefined) {
      this.setState(e, JobState.JOB_STATE_CANCELLED, e.cancelReason);
      return e.job;
    }
    e.abortKind = 'cancel';
    e.abort?.abort(new PurifyError(ErrorCode.Cancelled, e.cancelReason));
    return e.job;
  }

  /**
   * Events with sequence ≥ `from`, then live ones until the job ends. `send`
   * resolves when the event is written; `signal` ends the watch early.
   */
  async watch(id: string, from: number, send: (e: JobEvent) => Promise<void>, signal: AbortSignal): Promise<void> {
    const e = this.entry(id);
    const queue: JobEvent[] = e.events.filter((ev) => ev.sequence >= from);
    let last = queue.length > 0 ? queue[queue.length - 1]!.sequence : from - 1;
    let wake: (() => void) | undefined;
    const onEvent = (ev: JobEvent | undefined): void => {
      if (ev === undefined) wake?.();
      else if (ev.sequence > last && ev.sequence >= from) {
        queue.push(ev);
        last = ev.sequence;
        wake?.();
      }
    };
    const onAbort = (): void => wake?.();
    this.live.on(id, onEvent);
    signal.addEventListener('abort', onAbort);
    try {
      for (;;) {
        while (queue.length > 0) {
          if (signal.aborted) return;
          await send(queue.shift()!);
        }
        if (signal.aborted || isTerminal(e.job.state) || this.stopping) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.live.off(id, onEvent);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Stops the running job at its next safe point (it stays RUNNING on disk, to resume) and waits for it. */
  async close(): Promise<void> {
    this.stopping = true;
    for (const e of this.jobs.values()) {
      if (e.abort !== undefined && !e.abort.signal.aborted) {
        e.abortKind = 'shutdown';
        e.abort.abort(new PurifyError(ErrorCode.Unavailable, 'the trainer is shutting down'));
      }
    }
    for (const id of this.jobs.keys()) this.live.emit(id, undefined);
    await this.running;
  }

  private emit(e: Entry, event: JobEvent['event']): void {
    const ev: JobEvent = { jobId: e.job.jobId, sequence: (e.events[e.events.length - 1]?.sequence ?? 0) + 1, time: new Date(), event };
    // A state event carries the job as it is now, so a watcher knows the outcome even if GetJob never answers.
    if (event?.$case === 'state') ev.job = Job.fromPartial(e.job);
    e.events.push(ev);
    this.store.append(ev);
    this.live.emit(e.job.jobId, ev);
  }

  private setState(e: Entry, state: JobState, message: string): void {
    e.job.state = state;
    e.job.message = message;
    e.job.updatedAt = new Date();
    this.store.save(e.job);
    if (message !== '') this.emit(e, { $case: 'log', log: message });
    this.emit(e, { $case: 'state', state });
    this.recordQueueDepth();
  }

  /** `purify_queue_depth{purify_queue="jobs"}`: the jobs waiting to run (PENDING). */
  private recordQueueDepth(): void {
    let pending = 0;
    for (const e of this.jobs.values()) if (e.job.state === JobState.JOB_STATE_PENDING) pending++;
    serviceMetrics.queueDepth('jobs', pending);
  }

  private save(e: Entry): void {
    e.job.updatedAt = new Date();
    this.store.save(e.job);
  }

  /** Starts the worker if it is idle and work is waiting. */
  private kick(): void {
    if (this.running !== undefined || this.stopping) return;
    this.running = this.work().finally(() => {
      this.running = undefined;
      if (!this.stopping && this.list([JobState.JOB_STATE_PENDING]).length > 0) this.kick();
    });
  }

  private async work(): Promise<void> {
    for (;;) {
      if (this.stopping) return;
      const next = this.list([JobState.JOB_STATE_PENDING])[0];
      if (next === undefined) return;
      await this.execute(this.entry(next.jobId));
    }
  }

  private async execute(e: Entry): Promise<void> {
    const job = e.job;
    const spec = job.spec!;
    e.abort = new AbortController();
    e.abortKind = undefined;
    try {
      e.checked ??= checkSpec(spec, this.settings.artifactsDir);
    } catch (err) {
      this.setState(e, JobState.JOB_STATE_FAILED, `the stored spec is no longer valid: ${PurifyError.wrap(err).message}`);
      e.abort = undefined;
      return;
    }
    const checked = e.checked;
    this.setState(e, JobState.JOB_STATE_RUNNING, '');
    const log = this.logger;
    const stepModel = stepModelLabel(spec);
    let lastSave = 0;
    try {
      const outcome = await runJob(
        job.jobId,
        spec,
        checked,
        this.settings,
        this.store.checkpointDir(job.jobId),
        {
          onWarning: (m) => this.emit(e, { $case: 'log', log: `warning: ${m}` }),
          onLog: (m) => this.emit(e, { $case: 'log', log: m }),
          onStart: (s) => {
            if (s.resumed) this.emit(e, { $case: 'log', log: `resumed from the checkpoint after round ${s.startRound}` });
          },
          onStep: (s: StepReport) => {
            serviceMetrics.trainingStep(s.ms / 1000, stepModel);
            job.progress = { round: s.round, rounds: checked.hyperparameters.rounds, step: s.step, steps: checked.hyperparameters.stepsPerRound };
            this.emit(e, { $case: 'step', step: { round: s.round, step: s.step, loss: s.loss, sourceLoss: s.sourceLoss, targetLoss: s.targetLoss, learningRate: s.learningRate, stepMs: s.ms } });
            if (Date.now() - lastSave > 2000) {
              lastSave = Date.now();
              this.save(e);
            }
          },
          onWeights: (round: number, w: WeightStatistics) => this.emit(e, { $case: 'weights', weights: { round, mean: w.mean, std: w.std, zeroFraction: w.zeroFraction, histogram: [...w.histogram] } }),
          onPolicy: (p) => {
            job.policy = { name: p.name, version: p.version };
            this.save(e);
          },
          onRound: (r: RoundReport) => {
            job.metrics = Object.entries(r.metrics)
              .filter(([, v]) => Number.isFinite(v))
              .map(([name, value]) => ({ name, value, split: name === 'source_val_dice' ? 'source-val' : 'round', measuredAt: new Date() }));
            this.save(e);
            this.emit(e, {
              $case: 'round',
              round: { round: r.round, metrics: job.metrics, timingsMs: { ...r.timingsMs }, teacherModel: r.teacher, policy: r.policy, snapshot: snapshotMessage(r.snapshot) },
            });
          },
        },
        e.abort.signal,
      );
      if (outcome.result.stopReason === 'cancelled') {
        if (e.abortKind === 'shutdown') {
          this.emit(e, { $case: 'log', log: 'stopped by a server shutdown; it resumes from the last round checkpoint when the trainer starts again' });
          this.save(e);
        } else {
          this.setState(e, JobState.JOB_STATE_CANCELLED, `${e.cancelReason} (after ${outcome.result.roundsDone} completed rounds; the round checkpoint is consistent)`);
        }
        return;
      }
      job.resultModel = outcome.published;
      job.metrics = outcome.metrics;
      this.setState(e, JobState.JOB_STATE_SUCCEEDED, outcome.published === undefined ? '' : `published ${outcome.published.name}:${outcome.published.version}`);
    } catch (err) {
      if (e.abortKind === 'shutdown') {
        this.save(e);
        return;
      }
      if (e.abortKind === 'cancel') {
        this.setState(e, JobState.JOB_STATE_CANCELLED, e.cancelReason);
        return;
      }
      const message = err instanceof Error ? err.message : String(err);
      log.warn('job failed', { job: job.jobId, error: redactForLog(message) });
      this.setState(e, JobState.JOB_STATE_FAILED, `${message} — resume with StartJob and the same job_id and spec once the cause is fixed`);
    } finally {
      e.abort = undefined;
    }
  }
}

/** A round's snapshot planes as the proto message (raw little-endian bytes, no copy). */
function snapshotMessage(s: RoundSnapshot | undefined): RoundSnapshotMessage | undefined {
  if (s === undefined) return undefined;
  const bytes = (a: Float32Array | Uint8Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  return { caseId: s.caseId, slice: s.slice, height: s.height, width: s.width, image: bytes(s.image), pseudoLabel: bytes(s.pseudoLabel), reliability: bytes(s.reliability), weights: bytes(s.weights), prediction: bytes(s.prediction) };
}
