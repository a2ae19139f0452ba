/**
 * Fast in-plane bilinear resampling of slice stacks, for the grids that
 * `resampledGrid` (@purify/imaging) makes when only x and y change: the same
 * box, "align corners = false". Along an axis of n samples resampled to n',
 * output index i reads input position u = (i + 0.5)·n/n' − 0.5, clamped to
 * [0, n − 1] (the border voxel up to the box edge), linearly interpolated.
 * This is what `resampleToGrid(…, 'linear')` computes for such grids (its z
 * weight is then 0), done separably with precomputed index/weight tables —
 * about two orders of magnitude faster than the general affine sampler, which
 * matters when every class of a probability map is mapped back.
 */

interface AxisTable {
  readonly i0: Int32Array;
  readonly i1: Int32Array;
  readonly f: Float32Array;
}

function axisTable(nIn: number, nOut: number): AxisTable {
  const i0 = new Int32Array(nOut);
  const i1 = new Int32Array(nOut);
  const f = new Float32Array(nOut);
  const scale = nIn / nOut;
  for (let i = 0; i < nOut; i++) {
    const u = Math.min(Math.max((i + 0.5) * scale - 0.5, 0), nIn - 1);
    const lo = Math.floor(u);
    i0[i] = lo;
    i1[i] = Math.min(lo + 1, nIn - 1);
    f[i] = u - lo;
  }
  return { i0, i1, f };
}

/**
 * Resamples `n` slices `[n, h, w]` (C order, w fastest) to `[n, h2, w2]`,
 * bilinear as described in the module comment. Returns a new array (or a copy
 * when the size does not change).
 */
export function resampleSlicesBilinear(src: Float32Array, shape: readonly [number, number, number], sizeYx: readonly [number, number]): Float32Array {
  const [n, h, w] = shape;
  const [h2, w2] = sizeYx;
  if (src.length !== n * h * w) throw new RangeError(`slices hold ${src.length} values, shape [${shape.join(', ')}] needs ${n * h * w}`);
  if (h2 === h && w2 === w) return src.slice();
  const tx = axisTable(w, w2);
  const ty = axisTable(h, h2);
  // Along x: [n, h, w] → [n, h, w2].
  const tmp = new Float32Array(n * h * w2);
  for (let r = 0; r < n * h; r++) {
    const s = r * w;
    const d = r * w2;
    for (let x = 0; x < w2; x++) {
      const a = src[s + (tx.i0[x] as number)] as number;
      const b = src[s + (tx.i1[x] as number)] as number;
      tmp[d + x] = a + (b - a) * (tx.f[x] as number);
    }
  }
  // Along y: [n, h, w2] → [n, h2, w2].
  const out = new Float32Array(n * h2 * w2);
  for (let k = 0; k < n; k++) {
    for (let y = 0; y < h2; y++) {
      const a0 = (k * h + (ty.i0[y] as number)) * w2;
      const b0 = (k * h + (ty.i1[y] as number)) * w2;
      const fy = ty.f[y] as number;
      const d = (k * h2 + y) * w2;
      for (let x = 0; x < w2; x++) {
        const a = tmp[a0 + x] as number;
        out[d + x] = a + ((tmp[b0 + x] as number) - a) * fy;
      }
    }
  }
  return out;
}
