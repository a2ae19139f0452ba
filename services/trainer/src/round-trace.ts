/**
 * One trace per adaptation round (issue #8): a root span `trainer.round` opens
 * when a round starts and ends with its report; every port call of the round
 * runs under it as a child span (`trainer.publish_teacher`, `trainer.predict`,
 * `trainer.score`, `trainer.act`, `trainer.feedback`, `trainer.update_policy`),
 * so the gRPC client spans to the segmenter, reliability and agent — and the
 * servers' spans behind them — land in the round's trace.
 *
 * The round is a new trace (root), not a child of the StartJob call that
 * queued the job: a job outlives that call by hours, and one trace per round
 * keeps traces of a readable size. Attributes are versions and counts only
 * ({@link SpanAttr}), never patient data.
 */
import { SpanAttr, startSpan, withSpan, type OpenSpan, type SpanAttributes } from '@purify/runtime';
import type { AdaptationCallbacks, AdaptationPorts, AgentPort, ReliabilityPort, RoundReport, TeacherPort } from '@purify/adaptation';

export class RoundTrace {
  private open: OpenSpan | undefined;
  private round = 0;

  /** `rounds`: rounds of the job; `batchSize`: slices per training step. */
  constructor(
    private readonly rounds: number,
    private readonly batchSize: number,
  ) {}

  /** The loop starts (or resumes) before round `startRound + 1`. */
  start(startRound: number): void {
    this.round = startRound;
    this.next();
  }

  /** A round finished: its span ends with the round's teacher and policy; the next one opens. */
  finish(report: RoundReport): void {
    const attributes: Record<string, string | number> = {};
    if (report.teacher !== undefined) Object.assign(attributes, { [SpanAttr.ModelName]: report.teacher.name, [SpanAttr.ModelVersion]: report.teacher.version });
    if (report.policy !== undefined) Object.assign(attributes, { [SpanAttr.PolicyName]: report.policy.name, [SpanAttr.PolicyVersion]: report.policy.version });
    this.open?.span.setAttributes(attributes);
    this.open?.end();
    this.open = undefined;
    this.round = report.round;
    this.next();
  }

  /** The loop is over (done, cancelled or failed): ends the open round span. */
  close(error?: unknown): void {
    this.open?.end(error);
    this.open = undefined;
  }

  private next(): void {
    if (this.round >= this.rounds) return;
    this.open = startSpan('trainer.round', { root: true, attributes: { [SpanAttr.Round]: this.round + 1, [SpanAttr.BatchSize]: this.batchSize } });
  }

  /** Runs `fn` in a child span `name` of the open round (or without a round span when none is open). */
  private call<T>(name: string, attributes: SpanAttributes, fn: () => Promise<T>, after?: (result: T) => SpanAttributes): Promise<T> {
    const traced = (): Promise<T> =>
      withSpan(name, async (span) => {
        const result = await fn();
        if (after) span.setAttributes(after(result));
        return result;
      }, { attributes });
    return this.open === undefined ? traced() : this.open.run(traced);
  }

  /** The loop's callbacks with the round boundaries added. */
  callbacks<C extends AdaptationCallbacks>(cb: C): C {
    return {
      ...cb,
      onStart: (e) => {
        this.start(e.startRound);
        cb.onStart?.(e);
      },
      onRound: (r) => {
        this.finish(r);
        cb.onRound?.(r);
      },
    };
  }

  /** `ports` with every call traced under the open round. */
  ports(ports: AdaptationPorts): AdaptationPorts {
    const t = ports.teacher;
    const teacher: TeacherPort = {
      publish: (model, round, signal) => this.call('trainer.publish_teacher', { [SpanAttr.Round]: round + 1 }, () => t.publish(model, round, signal), (ref) => ({ [SpanAttr.ModelName]: ref.name, [SpanAttr.ModelVersion]: ref.version })),
      predict: (ref, volume, signal) => this.call('trainer.predict', { [SpanAttr.ModelVersion]: ref.version, [SpanAttr.VoxelCount]: volume.image.length }, () => t.predict(ref, volume, signal)),
    };
    const r = ports.reliability;
    const reliability: ReliabilityPort | undefined = r && {
      score: (ref, volume, round, signal) =>
        this.call('trainer.score', { [SpanAttr.ModelVersion]: ref.version, [SpanAttr.VoxelCount]: volume.image.length, [SpanAttr.Round]: round + 1 }, () => r.score(ref, volume, round, signal), (s) => ({ [SpanAttr.RegionCount]: s.numRegions })),
    };
    const a = ports.agent;
    const agent: AgentPort | undefined = a && {
      act: (request, policy, signal) =>
        this.call('trainer.act', { [SpanAttr.RegionCount]: request.numRows }, () => a.act(request, policy, signal), (res) => ({ [SpanAttr.PolicyName]: res.policy.name, [SpanAttr.PolicyVersion]: res.policy.version })),
      feedback: (rewards, signal) => this.call('trainer.feedback', { [SpanAttr.BatchSize]: rewards.length }, () => a.feedback(rewards, signal)),
      update: (policy, provenance, signal) =>
        this.call('trainer.update_policy', { [SpanAttr.PolicyName]: policy.name, [SpanAttr.PolicyVersion]: policy.version }, () => a.update(policy, provenance, signal)),
    };
    return { teacher, reliability, agent };
  }
}
