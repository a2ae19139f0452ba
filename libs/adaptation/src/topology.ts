/**
 * A shape prior learned from the source labels: classes that are one
 * connected structure in (nearly) every labelled source volume — an organ,
 * not scattered lesions — should be one structure in a target pseudo-label
 * too. Pieces of such a class outside its largest 3-D component are the
 * teacher's confident mistakes far from the organ (the islands behind a large
 * HD95); purification relabels them as background. Label-free on the target:
 * the prior comes from source labels only, and a class that is fragmented in
 * the source (e.g. lesions) is left alone.
 */
import { AdaptationConfigError } from './errors';

/** 6-connected components of the voxels of `label` (`[z, h, w]`) equal to `cls`: a component id per voxel (−1 elsewhere) and the sizes. */
export function components(label: Uint8Array, shape: readonly [number, number, number], cls: number): { ids: Int32Array; sizes: number[] } {
  const [z, h, w] = shape;
  if (label.length !== z * h * w) throw new AdaptationConfigError('topology', `a label map of ${label.length} voxels does not match the shape [${shape.join(', ')}]`);
  const ids = new Int32Array(label.length).fill(-1);
  const sizes: number[] = [];
  const stack: number[] = [];
  const plane = h * w;
  for (let start = 0; start < label.length; start++) {
    if (label[start] !== cls || ids[start] !== -1) continue;
    const id = sizes.length;
    let size = 0;
    ids[start] = id;
    stack.push(start);
    while (stack.length > 0) {
      const p = stack.pop() as number;
      size++;
      const x = p % w;
      const y = Math.floor(p / w) % h;
      const s = Math.floor(p / plane);
      const visit = (q: number): void => {
        if (label[q] === cls && ids[q] === -1) {
          ids[q] = id;
          stack.push(q);
        }
      };
      if (x > 0) visit(p - 1);
      if (x < w - 1) visit(p + 1);
      if (y > 0) visit(p - w);
      if (y < h - 1) visit(p + w);
      if (s > 0) visit(p - plane);
      if (s < z - 1) visit(p + plane);
    }
    sizes.push(size);
  }
  return { ids, sizes };
}

/**
 * The classes (≥ 1) that form exactly one connected component in at least
 * `minShare` of the labelled volumes that contain them (and are present in at
 * least `minVolumes` volumes). Ascending.
 */
export function singleStructureClasses(volumes: readonly { label: Uint8Array; shape: readonly [number, number, number] }[], numClasses: number, options: { minShare?: number; minVolumes?: number } = {}): number[] {
  const minShare = options.minShare ?? 0.9;
  const minVolumes = options.minVolumes ?? 2;
  const out: number[] = [];
  for (let c = 1; c < numClasses; c++) {
    let present = 0;
    let single = 0;
    for (const v of volumes) {
      const n = components(v.label, v.shape, c).sizes.length;
      if (n > 0) present++;
      if (n === 1) single++;
    }
    if (present >= minVolumes && single >= minShare * present) out.push(c);
  }
  return out;
}

/**
 * `label` with every listed class reduced to its largest 3-D component; the
 * other voxels of that class become background (0). Returns the new map and
 * how many voxels changed. The input is not modified.
 */
export function keepLargestComponents(label: Uint8Array, shape: readonly [number, number, number], classes: readonly number[]): { label: Uint8Array; changed: number } {
  const out = Uint8Array.from(label);
  let changed = 0;
  for (const c of classes) {
    const { ids, sizes } = components(label, shape, c);
    if (sizes.length <= 1) continue;
    let largest = 0;
    for (let i = 1; i < sizes.length; i++) if ((sizes[i] as number) > (sizes[largest] as number)) largest = i;
    for (let i = 0; i < out.length; i++) {
      if (ids[i] !== -1 && ids[i] !== largest) {
        out[i] = 0;
        changed++;
      }
    }
  }
  return { label: out, changed };
}
