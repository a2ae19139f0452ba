import { components, keepLargestComponents, singleStructureClasses } from './topology';

/** A `[z, h, w]` label map from rows of digits, slices separated by '|' (e.g. '110|000'). */
function map(spec: string, h: number): { label: Uint8Array; shape: [number, number, number] } {
  const slices = spec.split('|');
  const w = (slices[0] as string).length / h;
  return { label: Uint8Array.from([...slices.join('')].map(Number)), shape: [slices.length, h, w] };
}

describe('components (6-connected, 3-D)', () => {
  it.each([
    // [label map (h rows of w), h, class, component sizes in scan order]
    ['1100' + '0011', 2, 1, [2, 2]], // two blobs in one slice
    ['1000' + '0100', 2, 1, [1, 1]], // diagonal neighbours are not connected
    ['1000' + '0000|' + '1000' + '0000', 2, 1, [2]], // connected across slices
    ['1000' + '0000|' + '0000' + '1000', 2, 1, [1, 1]], // no diagonal across slices either
    ['2222' + '2002', 2, 2, [6]], // a ring
    ['0000' + '0000', 2, 1, []],
  ])('%s (h %i), class %i: sizes %j', (spec, h, cls, sizes) => {
    const { label, shape } = map(spec, h);
    expect(components(label, shape, cls).sizes).toEqual(sizes);
  });

  it('refuses a label map that does not match its shape', () => {
    expect(() => components(new Uint8Array(5), [1, 2, 2], 1)).toThrow('a label map of 5 voxels does not match the shape [1, 2, 2]');
  });
});

describe('singleStructureClasses', () => {
  const a = map('1102' + '0002', 2); // class 1 one piece, class 2 one piece
  const b = map('1020' + '0102', 2); // class 1 two pieces, class 2 two pieces
  const c = map('1100' + '0020', 2); // class 1 one piece, class 2 one piece
  it.each([
    // [case, volumes, minShare, expected]
    ['single in both volumes at minShare 0.9: both classes', [a, c], 0.9, [1, 2]],
    ['single in 2 of 3 volumes, minShare 0.9: none', [a, b, c], 0.9, []],
    ['single in 2 of 3 volumes, minShare 0.6: both', [a, b, c], 0.6, [1, 2]],
    ['present in fewer than 2 volumes: none', [a], 0.9, []],
  ])('%s', (_case, volumes, minShare, want) => {
    expect(singleStructureClasses(volumes, 4, { minShare })).toEqual(want);
  });
});

describe('keepLargestComponents', () => {
  it('relabels the smaller pieces of the listed classes as background and leaves the rest alone', () => {
    const { label, shape } = map('1101' + '2022|' + '1000' + '0000', 2);
    const before = Uint8Array.from(label);
    const out = keepLargestComponents(label, shape, [1]);
    // Class 1: {0,1,8} (size 3 across slices) is kept, the single voxel at 3 goes; class 2 is not listed.
    expect(Array.from(out.label)).toEqual([1, 1, 0, 0, 2, 0, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0]);
    expect(out.changed).toBe(1);
    expect(label).toEqual(before);
    const both = keepLargestComponents(label, shape, [1, 2]);
    expect(Array.from(both.label)).toEqual([1, 1, 0, 0, 0, 0, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0]);
    expect(both.changed).toBe(2);
  });
});
