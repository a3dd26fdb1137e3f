"""How much of a mock field's placed sources a pipeline catalogue recovers
(:func:`compare_with_truth`; the truth tables come from :func:`jaxcomp.ast.mock.mock_truth`)."""

from __future__ import annotations

import numpy as np

__all__ = ["compare_with_truth"]


def compare_with_truth(catalogue, truth, radius_px: float = 3.0) -> dict:
    """Completeness and purity of a pipeline catalogue against the sources placed in a mock.

    Matching is one-to-one, closest first, within ``radius_px`` (truth sources vs
    catalogue rows). Returns counts and fractions for the detection list and the final
    catalogue (``C``), overall and per class of the placed sources:

    * ``completeness_detected`` / ``completeness_final``: fraction of placed sources
      matched by a detection / a final-catalogue source (class 1-4: those LEGUS
      visually inspected, i.e. that passed both stages on the real images);
    * ``purity_final``: fraction of final-catalogue sources matched to a placed real
      source (the rest are field stars, blends or noise).
    """
    from scipy.spatial import cKDTree

    def match(cat_xy, tru_xy):
        hit = np.zeros(len(tru_xy), bool)
        used = np.zeros(len(cat_xy), bool)
        if len(cat_xy) == 0 or len(tru_xy) == 0:
            return hit, used
        sdm = cKDTree(tru_xy).sparse_distance_matrix(
            cKDTree(cat_xy), radius_px, output_type="ndarray"
        )
        order = np.argsort(sdm["v"], kind="stable")
        for i, j in zip(sdm["i"][order], sdm["j"][order]):
            if not hit[i] and not used[j]:
                hit[i] = True
                used[j] = True
        return hit, used

    truth = truth[truth["kind"] == "source"] if "kind" in truth.colnames else truth
    txy = np.column_stack([np.asarray(truth["x"], float), np.asarray(truth["y"], float)])
    cxy = np.column_stack([np.asarray(catalogue["x"], float), np.asarray(catalogue["y"], float)])
    final = np.asarray(catalogue["C"], bool)
    hit_det, _ = match(cxy, txy)
    hit_fin, used_fin = match(cxy[final], txy)
    cls = np.asarray(truth["class_mode"])
    out = {
        "n_placed": int(len(truth)),
        "n_detected": int(len(catalogue)),
        "n_final": int(final.sum()),
        "completeness_detected": float(hit_det.mean()) if len(truth) else float("nan"),
        "completeness_final": float(hit_fin.mean()) if len(truth) else float("nan"),
        "purity_final": float(used_fin.mean()) if final.any() else float("nan"),
        "by_class": {},
    }
    for c in sorted(set(cls.tolist())):
        s = cls == c
        out["by_class"][int(c)] = {
            "n": int(s.sum()),
            "completeness_detected": float(hit_det[s].mean()),
            "completeness_final": float(hit_fin[s].mean()),
        }
    s = np.isin(cls, (1, 2, 3, 4))
    out["completeness_final_class1to4"] = float(hit_fin[s].mean()) if s.any() else float("nan")
    s = np.isin(cls, (1, 2, 3))
    out["completeness_final_class1to3"] = float(hit_fin[s].mean()) if s.any() else float("nan")
    return out
