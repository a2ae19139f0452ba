"""Independent reference for @purify/metrics tests (numpy + scipy; test-only).

Reads one JSON request on stdin, writes one JSON answer on stdout.

  {"op": "edt", "cases": [{"shape": [z, y, x], "spacingXyzMm": [x, y, z], "mask": [...]}]}
    -> {"results": [[distance mm per voxel, C order]]}
       scipy.ndimage.distance_transform_edt(mask == 0, sampling=(sz, sy, sx))

  {"op": "metrics", "cases": [{"shape", "spacingXyzMm", "pred": [...], "gt": [...],
                               "labels": [...], "toleranceMm": t}]}
    -> {"results": [[{label, dice, hd, hd95, assd, surfaceDice, nSurfPred, nSurfGt,
                      bothEmpty, oneEmpty}]]}   (missing distances as null)

Conventions (DESIGN.md section 6), written here without looking at the TypeScript:
  - axes of extent 1 are dropped (a [1, y, x] image is 2D) before anything else;
  - surface = mask & ~binary_erosion(mask, face-connected cross, border_value=0);
  - directed distances: EDT to the other surface (sampling = spacing), read on this surface;
  - HD = max of directed maxima; HD95 = max of directed np.percentile(., 95) (linear);
    ASSD = mean of the two directed means;
  - surface Dice = (#pred-surface within tol + #gt-surface within tol) / (#pred-surface + #gt-surface),
    "within" meaning d <= tol + 1e-9 mm (so a distance equal to tol up to rounding counts);
  - both empty: Dice 1, distances 0, surface Dice 1; one empty: Dice 0, distances null, surface Dice 0.
"""
import json
import sys

import numpy as np
from scipy import ndimage


def squeeze(shape, spacing_xyz):
    """Array shape and (z, y, x) sampling with length-1 axes removed."""
    spacing_zyx = list(reversed(spacing_xyz))
    keep = [i for i in range(3) if shape[i] > 1]
    return [shape[i] for i in keep], [spacing_zyx[i] for i in keep]


def edt_case(case):
    dims, sampling = squeeze(case["shape"], case["spacingXyzMm"])
    mask = np.asarray(case["mask"], dtype=np.float64).reshape(dims)
    dist = ndimage.distance_transform_edt(mask == 0, sampling=sampling)
    return dist.ravel().tolist()


def surface(mask):
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure, border_value=0)
    return mask & ~eroded


def metrics_case(case):
    dims, sampling = squeeze(case["shape"], case["spacingXyzMm"])
    pred_all = np.asarray(case["pred"]).reshape(dims)
    gt_all = np.asarray(case["gt"]).reshape(dims)
    tol = case["toleranceMm"] + 1e-9
    out = []
    for label in case["labels"]:
        p = pred_all == label
        g = gt_all == label
        sp, sg = surface(p), surface(g)
        row = {"label": label, "nSurfPred": int(sp.sum()), "nSurfGt": int(sg.sum())}
        if not p.any() and not g.any():
            row.update(dice=1.0, hd=0.0, hd95=0.0, assd=0.0, surfaceDice=1.0, bothEmpty=True, oneEmpty=False)
        elif not p.any() or not g.any():
            row.update(dice=0.0, hd=None, hd95=None, assd=None, surfaceDice=0.0, bothEmpty=False, oneEmpty=True)
        else:
            dice = 2.0 * np.logical_and(p, g).sum() / (p.sum() + g.sum())
            d_pg = ndimage.distance_transform_edt(~sg, sampling=sampling)[sp]
            d_gp = ndimage.distance_transform_edt(~sp, sampling=sampling)[sg]
            row.update(
                dice=float(dice),
                hd=float(max(d_pg.max(), d_gp.max())),
                hd95=float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95))),
                assd=float((d_pg.mean() + d_gp.mean()) / 2.0),
                surfaceDice=float(((d_pg <= tol).sum() + (d_gp <= tol).sum()) / (d_pg.size + d_gp.size)),
                bothEmpty=False,
                oneEmpty=False,
            )
        out.append(row)
    return out


def main():
    request = json.load(sys.stdin)
    handler = {"edt": edt_case, "metrics": metrics_case}[request["op"]]
    json.dump({"results": [handler(c) for c in request["cases"]]}, sys.stdout)


if __name__ == "__main__":
    main()
