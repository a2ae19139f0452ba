import { createHash } from 'node:crypto';
import { DicomError } from './errors';
import { decodeStoredValues, parseInstance, pixelFormatOf } from './instance';
import { groupSeries, selectSeries, seriesToVolume, type SeriesInfo } from './series';
import { runPythonJson } from '../test/oracles';
import { PYDICOM_TEST_FILES, pydicomFile } from '../test/orthanc';
import { slice, stack } from '../test/slices';

const info = (uid: string, over: Partial<SeriesInfo> = {}): SeriesInfo => ({
  seriesInstanceUid: uid,
  studyInstanceUid: '1.2',
  modality: 'CT',
  seriesDescription: '',
  seriesNumber: undefined,
  imageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
  numberOfInstances: 10,
  ...over,
});

describe('groupSeries', () => {
  it('groups interleaved instances by SeriesInstanceUID in order of first appearance', () => {
    // 3 slices of series A and 2 of B, interleaved → [A: 3, B: 2].
    const a = stack(3, { seriesUid: '1.2.3.100' });
    const b = stack(2, { seriesUid: '1.2.3.200' }).map((s, k) => ({ ...s, sopInstanceUid: `9.${k}` }));
    const groups = groupSeries([a[0]!, b[0]!, a[1]!, b[1]!, a[2]!]);
    expect(groups.map((g) => [g.seriesInstanceUid, g.numberOfInstances])).toEqual([
      ['1.2.3.100', 3],
      ['1.2.3.200', 2],
    ]);
  });
});

describe('selectSeries', () => {
  it.each([
    // ORIGINAL/PRIMARY/AXIAL beats a DERIVED series with more slices.
    ['prefers ORIGINAL PRIMARY AXIAL', [info('1', { imageType: ['DERIVED', 'SECONDARY', 'AXIAL'], numberOfInstances: 50 }), info('2')], {}, '2'],
    // Same ImageType: more instances wins.
    ['then more slices', [info('1', { numberOfInstances: 5 }), info('2', { numberOfInstances: 7 })], {}, '2'],
    // Same everything: lower SeriesNumber wins.
    ['then lower SeriesNumber', [info('1', { seriesNumber: 4 }), info('2', { seriesNumber: 3 })], {}, '2'],
    // Description filter.
    ['description pattern', [info('1', { seriesDescription: 'lung 1mm' }), info('2', { seriesDescription: 'ABDOMEN venous', numberOfInstances: 3 })], { descriptionPattern: /abdomen/i }, '2'],
    // MR allowed explicitly.
    ['MR when asked', [info('1', { modality: 'MR' })], { modalities: ['MR'] }, '1'],
  ] as const)('%s', (_name, series, rules, want) => {
    expect(selectSeries(series, rules).selected?.seriesInstanceUid).toBe(want);
  });

  it('rejects with a reason per series', () => {
    const result = selectSeries(
      [
        info('1', { modality: 'MR' }),
        info('2', { modality: 'SEG' }),
        info('3', { imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] }),
        info('4', { seriesDescription: 'scout' }),
        info('5', { imageType: ['DERIVED', 'SECONDARY'] }),
        info('6', { numberOfInstances: 2 }),
      ],
      { excludeDescriptionPattern: /scout/i, requiredImageType: ['ORIGINAL'], minSlices: 3 },
    );
    expect(result.selected).toBeUndefined();
    expect(result.candidates.map((c) => c.rejected)).toEqual([
      'modality MR is not one of CT',
      'modality SEG is not an image series',
      'ImageType marks it a LOCALIZER',
      'SeriesDescription matches the exclusion /scout/i',
      'ImageType [DERIVED\\SECONDARY] lacks ORIGINAL',
      '2 instance(s), fewer than 3',
    ]);
  });
});

describe('seriesToVolume geometry', () => {
  it('sorts shuffled axial slices along the normal; spacing from positions, not SliceThickness', () => {
    // 4 slices, 2.5 mm apart from z = −10, SliceThickness 5 (wrong on purpose), given in order [2, 0, 3, 1].
    // Slice k is filled with k → data[z] = z; spacing (x, y, z) = (0.7, 0.5, 2.5) since PixelSpacing = [row 0.5, col 0.7].
    const s = stack(4, { gap: 2.5, origin: [0, 0, -10], sliceThickness: 5 });
    const v = seriesToVolume([s[2]!, s[0]!, s[3]!, s[1]!]);
    expect(v.volume.shape).toEqual([4, 2, 3]);
    expect(v.volume.spacingXyzMm).toEqual([0.7, 0.5, 2.5]);
    expect(v.volume.originLpsMm).toEqual([0, 0, -10]);
    expect(v.volume.directionLps).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(Array.from(v.volume.data).filter((_, i) => i % 6 === 0)).toEqual([0, 1, 2, 3]);
    expect(v.slices.map((x) => x.sopInstanceUid)).toEqual(['1.2.3.4.1', '1.2.3.4.2', '1.2.3.4.3', '1.2.3.4.4']);
    expect(v.warnings).toEqual(['series 1.2.3.4: SliceThickness 5 mm differs from the spacing of the positions, 2.5 mm (the positions are used)']);
  });

  it('a normal pointing to the feet: the first slice is the most superior', () => {
    // IOP rows +x, columns −y → n = x × (−y) = −z. Positions z = 0, 2, 4 → sorted by −z: 4, 2, 0.
    // Direction columns: (1,0,0), (0,−1,0), (0,0,−1); origin z = 4; slice fills 2, 1, 0.
    const v = seriesToVolume(stack(3, { orientation: [1, 0, 0, 0, -1, 0], positions: [[0, 0, 0], [0, 0, 2], [0, 0, 4]] }));
    expect(v.volume.directionLps).toEqual([1, 0, 0, 0, -1, 0, 0, 0, -1]);
    expect(v.volume.originLpsMm).toEqual([0, 0, 4]);
    expect(v.volume.spacingXyzMm[2]).toBeCloseTo(2, 12);
    expect(Array.from(v.volume.data).filter((_, i) => i % 6 === 0)).toEqual([2, 1, 0]);
  });

  it('an oblique stack: direction columns are row cosine, column cosine and their cross product', () => {
    // Rows along (cos30, sin30, 0), columns along (0, 0, −1) (a coronal-ish oblique plane):
    // n = row × col = (sin30·(−1) − 0, 0 − cos30·(−1), 0) = (−0.5, 0.866…, 0). Slices 3 mm apart along n.
    const c = Math.cos(Math.PI / 6);
    const o = [c, 0.5, 0, 0, 0, -1];
    const v = seriesToVolume(stack(3, { orientation: o, gap: 3, origin: [5, 6, 7] }).reverse());
    const d = v.volume.directionLps;
    // DS values keep 14 significant digits (16 characters).
    [c, 0.5, 0].forEach((want, r) => expect(d[r * 3]).toBeCloseTo(want, 12));
    expect([d[1], d[4], d[7]]).toEqual([0, 0, -1]);
    [-0.5, c, 0].forEach((want, r) => expect(d[r * 3 + 2]).toBeCloseTo(want, 12));
    expect(v.volume.originLpsMm).toEqual([5, 6, 7]);
    expect(v.volume.spacingXyzMm[2]).toBeCloseTo(3, 9);
  });

  it('applies RescaleSlope/Intercept: int16 when every value is an int16 integer, else float32', () => {
    // stored 0..5, slope 2, intercept −1024 → −1024, −1022, …, −1014 (Int16Array).
    const values = Int16Array.from([0, 1, 2, 3, 4, 5]);
    const a = seriesToVolume([slice({ sopUid: '1.1', position: [0, 0, 0], values, slope: 2, intercept: -1024 })]);
    expect(a.volume.data).toEqual(Int16Array.from([-1024, -1022, -1020, -1018, -1016, -1014]));
    // slope 0.5 → 0, 0.5, …, 2.5 (Float32Array).
    const b = seriesToVolume([slice({ sopUid: '1.1', position: [0, 0, 0], values, slope: 0.5 })]);
    expect(b.volume.data).toEqual(Float32Array.from([0, 0.5, 1, 1.5, 2, 2.5]));
    expect(b.warnings).toEqual(['series 1.2.3.4: a single slice; slice spacing 2 mm taken from SliceThickness']);
  });
});

describe('seriesToVolume bad input', () => {
  const fail = (instances: Parameters<typeof seriesToVolume>[0]): DicomError => {
    try {
      seriesToVolume(instances);
    } catch (err) {
      if (err instanceof DicomError) return err;
      throw err;
    }
    throw new Error('expected a DicomError');
  };
  const tilted = (() => {
    // Gantry tilt 15°: each 2 mm step along z also moves 2·tan15° = 0.536 mm along y.
    const t = Math.tan((15 * Math.PI) / 180);
    return stack(3, { positions: [0, 1, 2].map((k) => [0, k * 2 * t, k * 2]) });
  })();

  it.each([
    ['mixed series', [...stack(2), ...stack(1, { seriesUid: '1.2.3.5' }).map((s) => ({ ...s, sopInstanceUid: '7' }))], 'mixed-series', 'instances belong to 2 series (1.2.3.4: 2 instance(s), 1.2.3.5: 1 instance(s)); select one series first'],
    // Positions 0, 2, 6: the 4 mm gap is 2× the median 2 mm → one slice missing.
    ['missing slices', stack(3, { positions: [[0, 0, 0], [0, 0, 2], [0, 0, 6]] }), 'missing-slices', 'series 1.2.3.4: missing slices: the regular spacing is 2.000 mm but 1 slice(s) missing between 1.2.3.4.2 and 1.2.3.4.3 (gap 4.000 mm)'],
    // Positions 0, 2, 5: 3 mm is not a multiple of 2 mm.
    ['irregular spacing', stack(3, { positions: [[0, 0, 0], [0, 0, 2], [0, 0, 5]] }), 'irregular-spacing', 'series 1.2.3.4: irregular slice spacing: the median gap is 2.000 mm but gap 3.000 mm between 1.2.3.4.2 and 1.2.3.4.3 (tolerance 1 %)'],
    ['duplicate positions', stack(2, { positions: [[0, 0, 1], [0, 0, 1]] }), 'duplicate-slices', 'series 1.2.3.4: 1.2.3.4.1 and 1.2.3.4.2 are both at 1.000 mm along the slice normal [0, 0, 1] (two acquisitions or duplicated instances in one series)'],
    // Sideways 2·0.536 = 1.072 mm over 4 mm → atan(1.072/4) = 15°.
    ['gantry tilt', tilted, 'gantry-tilt', 'series 1.2.3.4: slice positions run 15.000° off the slice normal (gantry tilt or sheared stack; 1.072 mm sideways over 4.000 mm); a volume needs positions along the normal (tolerance 0.02°)'],
    [
      'inconsistent orientation',
      [slice({ sopUid: '1', position: [0, 0, 0] }), slice({ sopUid: '2', position: [0, 0, 2], orientation: [1, 0, 0, 0, 0, -1] })],
      'inconsistent-orientation',
      'series 1.2.3.4: inconsistent orientation within the series: 2 has ImageOrientationPatient [1, 0, 0, 0, 0, -1] but 1 has [1, 0, 0, 0, 1, 0]',
    ],
    ['mixed sizes', [slice({ sopUid: '1', position: [0, 0, 0] }), slice({ sopUid: '2', position: [0, 0, 2], rows: 3 })], 'mixed-sizes', 'series 1.2.3.4: mixed image sizes within the series: 2 differs from 1: size 3×3 vs 2×3'],
  ] as const)('%s', (_name, instances, kind, message) => {
    const err = fail(instances);
    expect([err.kind, err.message]).toEqual([kind, message]);
  });

  it.each([
    // Real files from Debian's python3-pydicom.
    ['JPEG2000.dcm', 'unsupported-transfer-syntax', /^JPEG2000\.dcm: pixel data is encoded as JPEG 2000 Image Compression \(1\.2\.840\.10008\.1\.2\.4\.91\), which we cannot decode; supported: Implicit VR Little Endian \(1\.2\.840\.10008\.1\.2\), Explicit VR Little Endian/],
    ['MR_small_RLE.dcm', 'unsupported-transfer-syntax', /^MR_small_RLE\.dcm: pixel data is encoded as RLE Lossless \(1\.2\.840\.10008\.1\.2\.5\), which we cannot decode/],
    ['rtdose.dcm', 'not-an-image', /^rtdose\.dcm: modality RTDOSE \(SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.481\.2\) is not an image; cannot build a volume from it$/],
    ['liver_1frame.dcm', 'not-an-image', /^liver_1frame\.dcm: modality SEG \(SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.66\.4\) is not an image; cannot build a volume from it$/],
    ['rtplan.dcm', 'not-an-image', /^rtplan\.dcm: modality RTPLAN \(SOP class [\d.]+\) is not an image; cannot build a volume from it$/],
    ['test-SR.dcm', 'not-an-image', /^test-SR\.dcm: modality SR \(SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\.33\) is not an image; cannot build a volume from it$/],
    ['ExplVR_LitEndNoMeta.dcm', 'not-dicom', /^ExplVR_LitEndNoMeta\.dcm: not a DICOM Part-10 file \(no "DICM" marker at byte 128; \d+ bytes\)$/],
  ] as const)('%s is refused (%s)', (name, kind, message) => {
    let err: unknown;
    try {
      seriesToVolume([parseInstance(pydicomFile(name), name)]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DicomError);
    expect((err as DicomError).kind).toBe(kind);
    expect((err as DicomError).message).toMatch(message);
  });
});

describe('real files (pydicom test data; oracle: pydicom + numpy)', () => {
  const oracle = (name: string): { sha: string; geometry?: number[] } =>
    runPythonJson(
      String.raw`
import sys, json, hashlib, numpy as np, pydicom
d = pydicom.dcmread(sys.argv[1])
a = d.pixel_array.astype(np.float64) * float(getattr(d, 'RescaleSlope', 1)) + float(getattr(d, 'RescaleIntercept', 0))
g = [float(v) for v in list(d.ImageOrientationPatient) + list(d.ImagePositionPatient) + list(d.PixelSpacing)] if 'ImageOrientationPatient' in d else None
print(json.dumps({'sha': hashlib.sha256(a.astype('<f8').tobytes()).hexdigest(), 'geometry': g}))`,
      [`${PYDICOM_TEST_FILES}/${name}`],
    );
  const sha = (values: ArrayLike<number>): string => createHash('sha256').update(Buffer.from(Float64Array.from(values).buffer)).digest('hex');

  it.each(['CT_small.dcm', 'MR_small.dcm', 'MR_small_bigendian.dcm', 'MR_small_implicit.dcm'])('%s: rescaled voxels and geometry equal pydicom’s', (name) => {
    const v = seriesToVolume([parseInstance(pydicomFile(name), name)]);
    const want = oracle(name);
    expect(sha(v.volume.data)).toBe(want.sha);
    const g = want.geometry as number[];
    const d = v.volume.directionLps;
    expect([d[0], d[3], d[6], d[1], d[4], d[7]]).toEqual(g.slice(0, 6));
    expect(v.volume.originLpsMm).toEqual(g.slice(6, 9));
    expect([v.volume.spacingXyzMm[1], v.volume.spacingXyzMm[0]]).toEqual(g.slice(9, 11));
  });

  it('image_dfl.dcm (Deflated Explicit VR Little Endian): stored values equal pydicom’s', () => {
    const inst = parseInstance(pydicomFile('image_dfl.dcm'), 'image_dfl.dcm');
    expect(sha(decodeStoredValues(inst, pixelFormatOf(inst)))).toBe(oracle('image_dfl.dcm').sha);
  });
});
