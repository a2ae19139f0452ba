/**
 * Persistence of adaptation jobs under `<artifacts>/jobs/<id>/`:
 *
 *   job.json       the Job (spec, state, progress, result, …), replaced atomically on every change
 *   events.log     the JobEvents, one JSON line each (proto JSON), append-only; a torn
 *                  last line (a crash mid-write) is dropped when the log is read back
 *   checkpoints/   the adaptation loop's round checkpoint (written atomically by @purify/models)
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '@purify/artifacts';
import { Job, JobEvent } from '@purify/proto';

export class JobStore {
  readonly root: string;

  constructor(artifactsDir: string) {
    this.root = join(artifactsDir, 'jobs');
    mkdirSync(this.root, { recursive: true });
  }

  dir(id: string): string {
    return join(this.root, id);
  }

  checkpointDir(id: string): string {
    return join(this.dir(id), 'checkpoints');
  }

  save(job: Job): void {
    mkdirSync(this.dir(job.jobId), { recursive: true });
    writeJsonAtomic(join(this.dir(job.jobId), 'job.json'), Job.toJSON(job));
  }

  append(event: JobEvent): void {
    appendFileSync(join(this.dir(event.jobId), 'events.log'), `${JSON.stringify(JobEvent.toJSON(event))}\n`);
  }

  /** Every job on disk (folders without a readable job.json are skipped). */
  loadAll(): { job: Job; events: JobEvent[] }[] {
    const out: { job: Job; events: JobEvent[] }[] = [];
    for (const id of readdirSync(this.root).sort()) {
      const file = join(this.dir(id), 'job.json');
      if (!existsSync(file)) continue;
      let job: Job;
      try {
        job = Job.fromJSON(JSON.parse(readFileSync(file, 'utf8')));
      } catch {
        continue;
      }
      out.push({ job, events: this.readEvents(id) });
    }
    return out;
  }

  readEvents(id: string): JobEvent[] {
    const file = join(this.dir(id), 'events.log');
    if (!existsSync(file)) return [];
    const events: JobEvent[] = [];
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        events.push(JobEvent.fromJSON(JSON.parse(line)));
      } catch {
        // A torn last line from a crash mid-append: it was never acknowledged.
      }
    }
    return events;
  }
}
