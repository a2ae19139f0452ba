// Integration: `purify adapt` following a job whose trainer goes away (#25
// item 6). A scripted trainer — a real gRPC server on port 0 built with the
// service runtime — plays the job's events and then dies (no grace period, as
// under kill -9); `runAdapt` must reconnect, report the job's real state and
// write the summary whenever the job succeeded.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Job, JobState, TrainerServiceService, type GetJobRequest, type JobEvent, type StartJobRequest, type WatchJobRequest } from '@purify/proto';
import { Logger, LogLevel, serverStream, startServer, unary, type HandlerEnv, type RunningServer } from '@purify/runtime';
import { runAdapt, type AdaptOptions } from '../src/commands/adapt';

/** What one trainer incarnation does when watched: the events it replays (from `from_sequence`), then whether it dies. */
interface Script {
  readonly events: JobEvent['event'][];
  /** Die (force-close every call, stop listening) after sending the events; else end the stream. */
  readonly dieAfter: boolean;
  /** The job GetJob returns while this incarnation lives. */
  readonly job: Job;
}

const JOB_ID_PREFIX = 'adapt-naive-s1-';
const running = (jobId: string): Job => Job.fromPartial({ jobId, state: JobState.JOB_STATE_RUNNING, progress: { rounds: 2, steps: 2 } });
const succeeded = (jobId: string): Job => Job.fromPartial({ jobId, state: JobState.JOB_STATE_SUCCEEDED, message: 'published m:3', resultModel: { name: 'm', version: 3 }, progress: { rounds: 2, steps: 2 } });

/** A trainer that answers StartJob / GetJob / WatchJob from `script`; returns the server and the events' log of the watch requests. */
async function scriptedTrainer(script: Script, port = 0): Promise<{ server: RunningServer; watchedFrom: number[] }> {
  const watchedFrom: number[] = [];
  const server: RunningServer = await startServer({
    kind: 'trainer',
    settings: { host: '127.0.0.1', port, maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 20, shutdownGraceMs: 0 },
    logger: new Logger(LogLevel.Silent),
    definition: TrainerServiceService,
    implementation: (env: HandlerEnv) => ({
      startJob: unary<StartJobRequest, Job>(env, 'StartJob', (req) => ({ ...script.job, jobId: req.spec!.jobId })),
      getJob: unary<GetJobRequest, Job>(env, 'GetJob', (req) => ({ ...script.job, jobId: req.jobId })),
      watchJob: serverStream<WatchJobRequest, JobEvent>(env, 'WatchJob', async (req, send) => {
        watchedFrom.push(req.fromSequence);
        const all = script.events.map((event, i): JobEvent => ({
          jobId: req.jobId,
          sequence: i + 1,
          time: new Date(),
          event,
          ...(event?.$case === 'state' ? { job: { ...(event.state === JobState.JOB_STATE_SUCCEEDED ? succeeded(req.jobId) : running(req.jobId)) } } : {}),
        }));
        for (const e of all.filter((x) => x.sequence >= req.fromSequence)) await send(e);
        if (script.dieAfter) {
          await new Promise((r) => setTimeout(r, 50));
          await server.shutdown();
          // Never returns normally: the stream is cut by the shutdown, as in a crash.
          await new Promise(() => undefined);
        }
      }),
    }),
  });
  return { server, watchedFrom };
}

const RUNNING_EVENTS: JobEvent['event'][] = [
  { $case: 'state', state: JobState.JOB_STATE_RUNNING },
  { $case: 'step', step: { round: 1, step: 1, loss: 0.5, sourceLoss: 0.3, targetLoss: 0.2, learningRate: 1e-4, stepMs: 1 } },
];
const SUCCEEDED_EVENTS: JobEvent['event'][] = [...RUNNING_EVENTS, { $case: 'state', state: JobState.JOB_STATE_SUCCEEDED }];

let dir: string;
const servers: RunningServer[] = [];
let stderr: string[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'adapt-watch-'));
  stderr = [];
  jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr.push(String(chunk));
    return true;
  });
});
afterEach(async () => {
  jest.restoreAllMocks();
  await Promise.all(servers.splice(0).map((s) => s.shutdown()));
  rmSync(dir, { recursive: true, force: true });
});

function options(trainer: string, reconnectMs: number): AdaptOptions {
  return {
    source: join(dir, 'ct'),
    target: join(dir, 'mr'),
    method: 'naive',
    out: join(dir, 'run'),
    seed: 1,
    onlineFinetuning: false,
    trainer,
    runDir: join(dir, '.purify'),
    timeoutMs: 2000,
    reconnectMs,
    json: false,
    summaryStream: new PassThrough(),
  };
}

describe('purify adapt when the trainer goes away', () => {
  it('writes the summary of a job that succeeded just before the trainer died (no GetJob answers)', async () => {
    const t = await scriptedTrainer({ events: SUCCEEDED_EVENTS, dieAfter: true, job: running('') });
    const summary = await runAdapt(options(t.server.address, 1000));
    expect(summary.state).toBe('succeeded');
    expect(summary.resultModel).toEqual({ name: 'm', version: 3 });
    const md = readFileSync(join(dir, 'run', 'summary.md'), 'utf8');
    expect(md).toContain('- state: succeeded — published m:3');
    expect(JSON.parse(readFileSync(join(dir, 'run', 'summary.json'), 'utf8'))).toMatchObject({ state: 'succeeded', resultModel: { name: 'm', version: 3 } });
  });

  it('gives up after --reconnect-ms with one line naming the last known state, and writes no summary', async () => {
    const t = await scriptedTrainer({ events: RUNNING_EVENTS, dieAfter: true, job: running('') });
    const started = Date.now();
    const err = await runAdapt(options(t.server.address, 800)).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(new RegExp(`^lost the trainer at ${t.server.address.replace('.', '\\.')} while following job ${JOB_ID_PREFIX}[0-9a-f]{6} \\(`));
    expect(err?.message).toContain("the job's last known state is running");
    expect(err?.message).toContain('run the same command again to reattach');
    expect(err?.message).not.toMatch(/CANCELLED|UNAVAILABLE|Call cancelled/);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(existsSync(join(dir, 'run', 'summary.json'))).toBe(false);
    expect(stderr.join('')).toContain('reconnecting for up to');
  });

  it('reconnects to a trainer that comes back on the same address and follows the job from the next event', async () => {
    const first = await scriptedTrainer({ events: RUNNING_EVENTS, dieAfter: true, job: running('') });
    const port = first.server.port;
    const run = runAdapt(options(first.server.address, 30_000));
    // Wait until the first incarnation is gone, then start the second on the same port.
    while (first.watchedFrom.length === 0) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    const second = await scriptedTrainer({ events: SUCCEEDED_EVENTS, dieAfter: false, job: succeeded('') }, port);
    servers.push(second.server);
    const summary = await run;
    expect(summary.state).toBe('succeeded');
    expect(first.watchedFrom).toEqual([0]);
    // The second incarnation was asked only for the events after the two already seen.
    expect(second.watchedFrom[0]).toBe(3);
  });
});
