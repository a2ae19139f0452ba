/**
 * Tiny datasets on disk for the trainer tests, in the layout `purify data
 * generate` writes: `ct/` (labelled source), `mr/` (target, with planted
 * training labels that must be ignored), `mr-oracle/labelsTr/`. Volumes are
 * `[2, 16, 16]` at (2, 2, 5) mm with one square organ (class 1).
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ClientReadableStream } from '@grpc/grpc-js';
import { DatasetWriter, makeVolume, writeNifti, type Volume } from '@purify/imaging';
import { JobState, type JobEvent, type TrainerServiceClient } from '@purify/proto';

const SHAPE: [number, number, number] = [2, 16, 16];

export function squareCase(k: number, invert: boolean): { image: Volume; label: Volume } {
  const n = 256;
  const img = new Float32Array(2 * n);
  const lab = new Uint8Array(2 * n);
  for (let i = 0; i < 2 * n; i++) {
    const y = Math.floor((i % n) / 16);
    const x = i % 16;
    const inside = y >= 3 + k && y < 10 + k && x >= 4 + k && x < 11 + k;
    img[i] = invert ? (inside ? 100 : 400) : inside ? 200 : -100;
    lab[i] = inside ? 1 : 0;
  }
  return { image: makeVolume(img, SHAPE, { spacingXyzMm: [2, 2, 5] }), label: makeVolume(lab, SHAPE, { spacingXyzMm: [2, 2, 5] }) };
}

export function writeData(): string {
  const root = mkdtempSync(join(tmpdir(), 'trainer-data-'));
  const labels = new Map([
    [0, 'background'],
    [1, 'organ'],
  ]);
  const ct = new DatasetWriter(join(root, 'ct'), { name: 'ct', channelNames: ['CT'], labels });
  for (let k = 0; k < 3; k++) ct.writeCase({ id: `ct_tr_${k}`, split: 'train', channels: [squareCase(k, false).image], label: squareCase(k, false).label });
  ct.finish();
  const mr = new DatasetWriter(join(root, 'mr'), { name: 'mr', channelNames: ['MR'], labels });
  for (let k = 0; k < 2; k++) mr.writeCase({ id: `mr_tr_${k}`, split: 'train', channels: [squareCase(k, true).image], label: squareCase(k, true).label });
  mr.finish();
  const other = new DatasetWriter(join(root, 'mr-liver'), { name: 'mr-liver', channelNames: ['MR'], labels: new Map([[0, 'background'], [1, 'liver']]) });
  other.writeCase({ id: 'a', split: 'train', channels: [squareCase(0, true).image] });
  other.finish();
  mkdirSync(join(root, 'mr-oracle', 'labelsTr'), { recursive: true });
  for (let k = 0; k < 2; k++) writeNifti(join(root, 'mr-oracle', 'labelsTr', `mr_tr_${k}.nii.gz`), squareCase(k, true).label);
  return root;
}

/** Watches a job from `from` until the server ends the stream (job over) or `until` says stop (then cancels the call). */
export function watch(client: TrainerServiceClient, jobId: string, from = 0, until?: (e: JobEvent) => boolean): Promise<JobEvent[]> {
  return new Promise((resolve, reject) => {
    const events: JobEvent[] = [];
    const call: ClientReadableStream<JobEvent> = client.watchJob({ jobId, fromSequence: from }, new Metadata(), { deadline: Date.now() + 120_000 });
    let stopped = false;
    call.on('data', (e: JobEvent) => {
      events.push(e);
      if (!stopped && until?.(e)) {
        stopped = true;
        call.cancel();
        resolve(events);
      }
    });
    call.on('error', (err: Error & { code?: number }) => {
      if (stopped && err.code === 1) return; // our own cancel
      reject(err);
    });
    call.on('end', () => resolve(events));
  });
}

export const stateOf = (e: JobEvent): JobState | undefined => (e.event?.$case === 'state' ? e.event.state : undefined);
