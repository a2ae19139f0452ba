/**
 * End to end (issue #7 "done when"): the four services run a full `rl`
 * adaptation on built-in CT → MR data, and the target Dice of the adapted model
 * beats source-only for the same seed and schedule.
 *
 * Opt-in (`PURIFY_E2E=1`): training a source model that finds the organs at all
 * takes minutes on a 2-core machine, far beyond a unit-test budget. Segmenter,
 * reliability and agent run as processes (sources through tsx, as the launcher
 * starts them); the trainer runs in process with `--inference remote`.
 * Target TEST labels are read here, by the test, for evaluation only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { JobSpec, JobState, Method, TrainerServiceClient } from '@purify/proto';
import { createClient, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import { MODEL_FILES, ModelRegistry } from '@purify/artifacts';
import { openDataset, readNifti } from '@purify/imaging';
import { organDice } from '@purify/adaptation';
import { loadSliceVolume, modelFromWeights, predictLabelVolume, trainSourceModel } from '@purify/training';
import { trainerService } from '../src';
import { watch } from './fixtures';

const RUN = process.env['PURIFY_E2E'] === '1';
const ROOT = resolve(__dirname, '../../..');

function startService(kind: 'segmenter' | 'reliability' | 'agent', args: string[]): Promise<{ child: ChildProcess; address: string }> {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const child = spawn(process.execPath, [`--import=${tsx}`, '--conditions=@purify/source', join(ROOT, 'services', kind, 'src', 'main.ts'), '--port', '0', '--log-level', 'warn', ...args], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  return new Promise((res, rej) => {
    child.once('message', (m: { type?: string; address?: string }) => (m.type === 'purify.ready' ? res({ child, address: m.address! }) : rej(new Error(`${kind}: unexpected message`))));
    child.once('exit', (code) => rej(new Error(`${kind} exited with ${code}`)));
  });
}

(RUN ? describe : describe.skip)('end to end: rl adaptation across the four services', () => {
  const children: ChildProcess[] = [];
  let dir: string;
  let trainer: RunningServer;
  let client: TrainerServiceClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'purify-e2e-'));
    execFileSync(process.execPath, [join(ROOT, 'tools/cli/bin/purify.js'), 'data', 'generate', '--out', join(dir, 'data'), '--domains', 'ct,mr', '--train-cases', '8', '--test-cases', '3', '--size', '48', '--slices', '12'], { stdio: 'ignore' });
    const artifacts = join(dir, 'artifacts');
    await trainSourceModel({ dataPath: join(dir, 'data', 'ct'), artifactsDir: artifacts, name: 'source', size: 48, steps: 600, batchSize: 8, unet: { depth: 3, baseWidth: 8 }, seed: 1 });
    const segmenter = await startService('segmenter', ['--artifacts-dir', artifacts]);
    const agent = await startService('agent', ['--artifacts-dir', artifacts]);
    const reliability = await startService('reliability', ['--segmenter-addresses', segmenter.address]);
    children.push(segmenter.child, agent.child, reliability.child);
    trainer = await startInProcess(trainerService, [
      '--port', '0', '--artifacts-dir', artifacts, '--inference', 'remote',
      '--segmenter-addresses', segmenter.address, '--reliability-addresses', reliability.address, '--agent-addresses', agent.address,
    ]);
    client = createClient(TrainerServiceClient, 'trainer', { addresses: [trainer.address] });
  }, 1_800_000);

  afterAll(async () => {
    client?.close();
    await trainer?.shutdown();
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  /** Organ-average Dice of a registry model on the MR test cases (working grid; evaluation only). */
  async function targetDice(name: string): Promise<number> {
    const v = new ModelRegistry(join(dir, 'artifacts')).get(name);
    const model = modelFromWeights(readFileSync(join(v.dir, MODEL_FILES.weights)));
    try {
      const ds = openDataset(join(dir, 'data', 'mr'));
      const labels = join(dir, 'data', 'mr-eval', 'labelsTs');
      const scores: number[] = [];
      for (const c of ds.cases.filter((x) => x.split === 'test')) {
        const vol = await loadSliceVolume({ ...c, labelPath: undefined }, { normalization: v.meta.normalization, spacingXyMm: v.meta.spacingXyMm, numClasses: v.meta.classes.length, requireLabel: false, keepOriginalLabel: false });
        const pred = predictLabelVolume(model, vol);
        const file = readdirSync(labels).find((f) => f.startsWith(`${c.id}.`))!;
        scores.push(organDice(pred.data, (await readNifti(join(labels, file))).data, v.meta.classes.length));
      }
      return scores.reduce((a, b) => a + b, 0) / scores.length;
    } finally {
      model.dispose();
    }
  }

  async function adapt(id: string, method: Method): Promise<number> {
    const spec = JobSpec.fromPartial({
      jobId: id,
      method,
      source: { path: join(dir, 'data', 'ct'), modality: 1, caseIds: [] },
      target: { path: join(dir, 'data', 'mr'), modality: 2, caseIds: [] },
      initModel: { name: 'source', version: 0 },
      hyperparameters: { rounds: 3, stepsPerRound: 30, batchSize: 8 },
      seed: 1,
      simulatedShiftPretraining: true,
    });
    await unaryCall(client, 'startJob', { spec });
    await watch(client, id);
    const job = await unaryCall(client, 'getJob', { jobId: id });
    expect(job.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    return targetDice(job.resultModel!.name);
  }

  it('rl improves the target Dice over source-only for the same seed and schedule', async () => {
    const sourceOnly = await adapt('e2e-source-only', Method.METHOD_SOURCE_ONLY);
    const rl = await adapt('e2e-rl', Method.METHOD_RL);
    process.stderr.write(`e2e target Dice: source-only ${sourceOnly.toFixed(4)}, rl ${rl.toFixed(4)}\n`);
    expect(rl).toBeGreaterThan(sourceOnly);
  }, 1_800_000);
});
