import { gridOf, type LabelMap } from './label-map';

/** Which axes are spatial: an axis whose **image** extent is 1 is absent (2D = [1, y, x]). */
export interface PresentAxes {
  readonly z: boolean;
  readonly y: boolean;
  readonly x: boolean;
}

/**
 * Surface voxels of a binary mask inside a box: mask voxels with at least one face
 * neighbour (±1 along a present axis) that is background or outside the box.
 * Everything outside the box counts as background, so mask voxels on the box
 * border are surface voxels. `mask` and the result are C-ordered [cz, cy, cx].
 * Returns the number of surface voxels; `out` receives 1 on surface voxels, else 0.
 */
export function surfaceInto(
  mask: Uint8Array,
  cz: number,
  cy: number,
  cx: number,
  axes: PresentAxes,
  out: Uint8Array,
): number {
  const plane = cy * cx;
  let count = 0;
  for (let z = 0; z < cz; z++) {
    for (let y = 0; y < cy; y++) {
      const row = (z * cy + y) * cx;
      for (let x = 0; x < cx; x++) {
        const i = row + x;
        if (mask[i] === 0) {
          out[i] = 0;
          continue;
        }
        const edge =
          (axes.x && (x === 0 || x === cx - 1 || mask[i - 1] === 0 || mask[i + 1] === 0)) ||
          (axes.y && (y === 0 || y === cy - 1 || mask[i - cx] === 0 || mask[i + cx] === 0)) ||
          (axes.z && (z === 0 || z === cz - 1 || mask[i - plane] === 0 || mask[i + plane] === 0));
        out[i] = edge ? 1 : 0;
        if (edge) count++;
      }
    }
  }
  return count;
}

/**
 * Surface of the non-zero voxels of `mask`: the mask minus its erosion with face
 * connectivity (6-neighbourhood in 3D; an axis of extent 1 is absent, so a 2D
 * image [1, y, x] uses the 4-neighbourhood in-plane). Everything outside the image
 * counts as background: mask voxels on the image border are surface voxels.
 * Layout: C-ordered [z, y, x] in and out; the result holds 1 on surface voxels.
 * Equivalent to scipy's `mask & ~binary_erosion(mask, generate_binary_structure(ndim, 1),
 * border_value=0)` on the array with its length-1 axes squeezed out.
 */
export function surfaceMask(mask: LabelMap): Uint8Array {
  const { nz, ny, nx } = gridOf(mask, 'mask');
  const binary = new Uint8Array(nz * ny * nx);
  for (let i = 0; i < binary.length; i++) binary[i] = mask.data[i] !== 0 ? 1 : 0;
  const out = new Uint8Array(binary.length);
  surfaceInto(binary, nz, ny, nx, { z: nz > 1, y: ny > 1, x: nx > 1 }, out);
  return out;
}
