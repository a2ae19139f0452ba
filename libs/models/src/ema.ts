import * as tf from '@tensorflow/tfjs';
import { ModelConfigError, ModelInputError } from './errors';
import type { SegModel } from './seg-model';
import { buildUNet } from './unet';

/**
 * DAFormer's EMA warm-up: the teacher's momentum at update `t` (0-based) is
 * `α_t = min(1 − 1/(t + 1), α)` — 0 at the first update (the teacher becomes a
 * copy of the student), 1/2 at the second, …, capped at `α`.
 */
export function emaAlpha(t: number, alpha: number): number {
  return Math.min(1 - 1 / (t + 1), alpha);
}

export interface EmaOptions {
  /** Cap α of the momentum, in [0, 1); default 0.999. */
  readonly alpha?: number;
  /** Name prefix of the teacher network; default `<student prefix>ema_`. */
  readonly namePrefix?: string;
}

/**
 * An exponential-moving-average copy of a student {@link SegModel} (the mean
 * teacher). `update(student)` sets every teacher weight to
 * `α_t · teacher + (1 − α_t) · student` — trainable weights and the BatchNorm
 * running statistics alike — with the warm-up {@link emaAlpha}. The teacher is a
 * full SegModel: predict with `teacher.model.predict`.
 */
export class EmaTeacher {
  readonly model: SegModel;
  readonly alpha: number;
  private t = 0;

  private constructor(model: SegModel, alpha: number) {
    this.model = model;
    this.alpha = alpha;
  }

  /** Builds the teacher with the student's configuration and current weights. */
  static create(student: SegModel, options: EmaOptions = {}): EmaTeacher {
    const alpha = options.alpha ?? 0.999;
    if (!(alpha >= 0 && alpha < 1)) throw new ModelConfigError(`EmaOptions.alpha must be a number in [0, 1), got ${JSON.stringify(alpha)}`);
    const model = buildUNet(student.config, { namePrefix: options.namePrefix ?? `${student.namePrefix}ema_` });
    try {
      model.setWeights(student.getWeights());
    } catch (err) {
      model.dispose();
      throw err;
    }
    return new EmaTeacher(model, alpha);
  }

  /** Updates applied so far (the `t` of the next update). */
  get updates(): number {
    return this.t;
  }

  /** Restores the update counter (from a checkpoint). */
  set updates(value: number) {
    if (!Number.isInteger(value) || value < 0) throw new ModelInputError(`EmaTeacher.updates must be an integer ≥ 0, got ${value}`);
    this.t = value;
  }

  /** One EMA step towards `student`; returns the α_t used. */
  update(student: SegModel): number {
    const a = emaAlpha(this.t, this.alpha);
    const teacherVars = this.model.variables();
    const studentVars = student.variables();
    if (teacherVars.length !== studentVars.length || teacherVars.some((v, i) => v.name !== studentVars[i]!.name)) {
      throw new ModelInputError(`EmaTeacher.update: student '${student.namePrefix}' does not have the teacher's weights (${teacherVars.length} vs ${studentVars.length})`);
    }
    tf.tidy(() => {
      teacherVars.forEach(({ variable }, i) => {
        variable.assign(tf.add(tf.mul(variable, a), tf.mul(studentVars[i]!.variable, 1 - a)));
      });
    });
    this.t += 1;
    return a;
  }

  dispose(): void {
    this.model.dispose();
  }
}
