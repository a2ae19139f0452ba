/**
 * Independent oracles for the tests (tests only; the product is Python-free):
 *   - Debian's python3 with pydicom + numpy decodes SEGs and source series on its own;
 *   - Debian's dcm2niix converts a series to NIfTI on its own;
 *   - Debian's dicom3tools `dciodvfy` validates an instance against its IOD.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const PYTHON = '/usr/bin/python3';

/** Runs `script` with `args` (sys.argv[1:]) and returns its stdout parsed as JSON. */
export function runPythonJson<T>(script: string, args: readonly string[] = []): T {
  const out = execFileSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(out) as T;
}

/**
 * pydicom's reading of a SEG onto the source series in `srcDir` (*.dcm): the
 * source slices are sorted by ImagePositionPatient along row × column cosine;
 * each frame is matched to the source slice at its PlanePosition (≤ 1e-3 mm);
 * voxel [k, r, c] gets the frame's segment number. Writes the uint8 `[z, y, x]`
 * volume to `outPath` and prints the SEG's attributes as JSON.
 */
export const PYDICOM_SEG_ORACLE = String.raw`
import sys, json, glob
import numpy as np, pydicom
seg_path, src_dir, out_path = sys.argv[1:4]
src = [pydicom.dcmread(f) for f in sorted(glob.glob(src_dir + '/*.dcm'))]
iop = np.array(src[0].ImageOrientationPatient, dtype=float)
n = np.cross(iop[:3], iop[3:])
src.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, dtype=float), n)))
pos = np.array([[float(v) for v in d.ImagePositionPatient] for d in src])
uids = [d.SOPInstanceUID for d in src]
seg = pydicom.dcmread(seg_path)
frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
out = np.zeros((len(src), int(seg.Rows), int(seg.Columns)), np.uint8)
shared = seg.SharedFunctionalGroupsSequence[0]
seg_iop = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
refs_ok = True
offsets = []
for i, fg in enumerate(seg.PerFrameFunctionalGroupsSequence):
    p = np.array(fg.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
    d = np.linalg.norm(pos - p, axis=1)
    k = int(np.argmin(d))
    offsets.append(float(d[k]))
    if fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID != uids[k]:
        refs_ok = False
    s = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    out[k][frames[i] == 1] = s
out.tofile(out_path)
ref_series = seg.ReferencedSeriesSequence[0]
print(json.dumps({
    'iopMaxDiff': float(np.max(np.abs(seg_iop - iop))),
    'maxFrameOffsetMm': max(offsets),
    'sourceRefsMatchPositions': refs_ok,
    'referencedSeriesUid': ref_series.SeriesInstanceUID,
    'referencedInstances': sorted(r.ReferencedSOPInstanceUID for r in ref_series.ReferencedInstanceSequence),
    'sourceInstances': sorted(uids),
    'seriesDescription': str(seg.SeriesDescription),
    'frameOfReferenceMatches': seg.FrameOfReferenceUID == src[0].FrameOfReferenceUID,
    'studyMatches': seg.StudyInstanceUID == src[0].StudyInstanceUID,
    'segments': {int(s.SegmentNumber): {
        'label': str(s.SegmentLabel),
        'algorithmType': str(s.SegmentAlgorithmType),
        'algorithmName': str(s.SegmentAlgorithmName),
        'category': [str(s.SegmentedPropertyCategoryCodeSequence[0].CodingSchemeDesignator), str(s.SegmentedPropertyCategoryCodeSequence[0].CodeValue)],
        'type': [str(s.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator), str(s.SegmentedPropertyTypeCodeSequence[0].CodeValue)],
    } for s in seg.SegmentSequence},
}))
`;

/** dcm2niix on a folder: the one NIfTI it writes (uncompressed, no BIDS sidecar). */
export function dcm2niix(srcDir: string, outDir: string): string {
  const r = spawnSync('dcm2niix', ['-z', 'n', '-b', 'n', '-f', 'converted', '-o', outDir, srcDir], { encoding: 'utf8' });
  const out = `${outDir}/converted.nii`;
  if (r.status !== 0 || !existsSync(out)) throw new Error(`dcm2niix failed (status ${r.status}): ${r.stdout}${r.stderr}`);
  return out;
}

/** dciodvfy's "Error" lines for a file (empty when it is valid). */
export function dciodvfyErrors(path: string): { errors: string[]; output: string } {
  const r = spawnSync('dciodvfy', [path], { encoding: 'utf8' });
  if (r.error) throw new Error(`dciodvfy could not run: ${r.error.message} (install the Debian package dicom3tools)`);
  const output = `${r.stdout}${r.stderr}`;
  return { errors: output.split('\n').filter((l) => /^\s*Error/.test(l)), output };
}
