import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { EmaTeacher, emaAlpha } from './ema';
import { ModelConfigError } from './errors';
import { buildUNet } from './unet';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('emaAlpha (DAFormer warm-up α_t = min(1 − 1/(t+1), α))', () => {
  it.each<[number, number, number]>([
    [0, 0.999, 0], // first update copies the student
    [1, 0.999, 0.5],
    [3, 0.999, 0.75],
    [9, 0.999, 0.9],
    [999, 0.999, 0.999], // 1 − 1/1000 = 0.999 = cap
    [5000, 0.999, 0.999], // capped
    [10, 0.5, 0.5],
  ])('t = %d, α = %d → %d', (t, alpha, expected) => {
    expect(emaAlpha(t, alpha)).toBeCloseTo(expected, 12);
  });
});

describe('EmaTeacher', () => {
  it('starts as a copy, then follows teacher ← α_t·teacher + (1 − α_t)·student on every weight', () => {
    const student = buildUNet({ baseWidth: 2, depth: 2 });
    const ema = EmaTeacher.create(student, { alpha: 0.9 });
    expect(ema.model.namePrefix).toBe(`${student.namePrefix}ema_`);
    expect(ema.model.getWeights()).toEqual(student.getWeights());
    const setAll = (c: number): void => student.setWeights(student.getWeights().map((w) => ({ ...w, values: new Float32Array(w.values.length).fill(c) })));
    const teacherValues = (): number[] => ema.model.getWeights().flatMap((w) => Array.from(w.values));

    setAll(4);
    expect(ema.update(student)).toBe(0); // t = 0: α = 0 → teacher = student = 4
    expect(new Set(teacherValues())).toEqual(new Set([4]));

    setAll(2);
    expect(ema.update(student)).toBe(0.5); // t = 1: 0.5·4 + 0.5·2 = 3 (running statistics too)
    expect(new Set(teacherValues())).toEqual(new Set([3]));

    setAll(0);
    expect(ema.update(student)).toBeCloseTo(2 / 3, 12); // t = 2: (2/3)·3 + (1/3)·0 = 2
    teacherValues().forEach((v) => expect(v).toBeCloseTo(2, 5));
    expect(ema.updates).toBe(3);

    const before = tf.memory().numTensors;
    ema.update(student);
    expect(tf.memory().numTensors).toBe(before);
    ema.dispose();
    student.dispose();
  });

  it('rejects α outside [0, 1)', () => {
    const student = buildUNet({ baseWidth: 2, depth: 1 });
    expect(() => EmaTeacher.create(student, { alpha: 1 })).toThrow(new ModelConfigError('EmaOptions.alpha must be a number in [0, 1), got 1'));
    student.dispose();
  });
});
