import { squareLabel, squareVolume } from './fixtures.test-util';
import { appearanceViews, meanProbabilities } from './views';

const volume = squareVolume('t', 4, { slices: 3, invert: true });
const label = squareLabel(4, 3);

describe('appearanceViews', () => {
  it.each([1, 2, 5])('%i views: the clean image plus the others drawn, geometry kept, the input untouched', (count) => {
    const before = Float32Array.from(volume.image);
    const views = appearanceViews(volume, label, count, 7, 'gin-classwise');
    expect(views.map((v) => v.id)).toEqual(Array.from({ length: count - 1 }, (_, i) => `t~view${i + 1}`));
    for (const v of views) {
      expect(v.shape).toEqual(volume.shape);
      expect(v.workingGrid).toBe(volume.workingGrid);
      expect(v.label).toBeUndefined();
      expect(v.image.length).toBe(volume.image.length);
      expect(v.image.every(Number.isFinite)).toBe(true);
      // An appearance view changes intensities.
      expect(v.image.some((x, i) => Math.abs(x - (volume.image[i] as number)) > 1e-3)).toBe(true);
    }
    expect(volume.image).toEqual(before);
  });

  it('is a function of the seed: the same seed gives the same views, another seed other views', () => {
    const a = appearanceViews(volume, label, 3, 11, 'gin-classwise');
    const b = appearanceViews(volume, label, 3, 11, 'gin-classwise');
    const c = appearanceViews(volume, label, 3, 12, 'gin-classwise');
    expect(b.map((v) => v.image)).toEqual(a.map((v) => v.image));
    expect(c[0]!.image).not.toEqual(a[0]!.image);
  });

  it('draws from the named preset only: the preset without augmentation gives the clean image back', () => {
    for (const v of appearanceViews(volume, label, 3, 5, 'none')) expect(v.image).toEqual(volume.image);
  });

  it.each([
    [0, 'an integer in [1, 64], got 0'],
    [1.5, 'an integer in [1, 64], got 1.5'],
    [65, 'an integer in [1, 64], got 65'],
  ])('refuses %p views', (count, message) => {
    expect(() => appearanceViews(volume, label, count, 1, 'strong')).toThrow(message);
  });

  it('refuses a class map of another size', () => {
    expect(() => appearanceViews(volume, label.subarray(1), 2, 1, 'strong')).toThrow(`the class map has ${label.length - 1} pixels, volume t has ${label.length}`);
  });
});

describe('meanProbabilities', () => {
  it('averages element-wise (hand-computed)', () => {
    const out = meanProbabilities([Float32Array.from([1, 0, 0.5, 0.5]), Float32Array.from([0, 1, 0.25, 0.75]), Float32Array.from([0.5, 0.5, 0, 1])]);
    expect(Array.from(out)).toEqual([0.5, 0.5, 0.25, 0.75]);
  });

  it('refuses nothing to average and arrays of different lengths', () => {
    expect(() => meanProbabilities([])).toThrow('no predictions to average');
    expect(() => meanProbabilities([new Float32Array(4), new Float32Array(3)])).toThrow('predictions of 3 and 4 values cannot be averaged');
  });
});
