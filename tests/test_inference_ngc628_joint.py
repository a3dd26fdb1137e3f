"""The catalogues of the NGC 628C + NGC 628E joint fit (inference/ngc628_joint_fit.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "inference" / "ngc628_joint_fit.py"


def _script():
    spec = importlib.util.spec_from_file_location("ngc628_joint_fit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_overlap_is_counted_once_and_the_domain_is_adamo17s():
    joint = _script()
    cats, info = joint.catalogues()
    assert info["n_duplicates_removed"] == 14
    assert info["ngc628c"]["class_1_3_after_dedup"] == 1017
    assert info["ngc628e"]["class_1_3_after_dedup"] == 259 - 14
    # no E cluster of the fit repeats a C cluster of the fit (within 0.1")
    removed_e = {row[0] for row in info["duplicates_removed_id_e_id_c_sep_arcsec"]}
    assert removed_e.isdisjoint(set(np.asarray(cats["ngc628e"]["id"])))
    assert all(sep <= 0.1 for *_, sep in info["duplicates_removed_id_e_id_c_sep_arcsec"])
    for name, t in cats.items():
        lm, la, av = (np.asarray(t[c], float) for c in ("log_mass", "log_age", "av"))
        assert len(t) == info[name]["in_domain"] > 0
        assert lm.min() >= joint.MASS_RANGE[0] and la.max() <= joint.AGE_RANGE[1]
        assert av.min() >= 0.0 and av.max() <= 3.0
