"""jaxcomp.ast.deblend_photutils.deblend_segments against photutils' deblend_sources itself."""

import warnings

import numpy as np
import pytest

from jaxcomp.ast.background import estimate_background
from jaxcomp.ast.deblend_photutils import deblend_segments, detect_segments, matches_photutils
from jaxcomp.ast.detection import multi_peak_labels
from jaxcomp.ast.settings import SExtractorConfig
from jaxcomp.ast.white_light import white_light

from .test_ast_pipeline import _busy_field


@pytest.fixture(scope="module")
def frame():
    from photutils.segmentation import detect_sources

    wl = white_light(_busy_field())
    cfg = SExtractorConfig()
    bkg, rms = estimate_background(wl, None, cfg)
    data = wl - bkg
    segm = detect_sources(data, cfg.detect_thresh * rms, n_pixels=cfg.detect_minarea)
    return data, segm, cfg.photutils_params()["deblend_sources"]


def _photutils(data, segm, labels, params):
    from photutils.segmentation import deblend_sources

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = deblend_sources(
            data, segm, labels=labels, progress_bar=False, relabel=False, **params
        )
    return out, [str(w.message) for w in caught]


def _ours(data, segm, labels, params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = deblend_segments(data, segm, labels, **params)
    return out, [str(w.message) for w in caught]


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"mode": "linear"},
        {"mode": "sinh"},
        {"contrast": 0.0},
        {"contrast": 0.2},
        {"n_levels": 4},
        {"connectivity": 4},
        {"shift": True},  # segments with non-positive minima: exponential -> linear, warned
        {"nan": True},  # NaN pixels inside segments
    ],
)
def test_deblend_segments_equals_photutils(frame, change):
    data, segm, params = frame
    params = dict(params)
    change = dict(change)
    shift = change.pop("shift", False)
    if change.pop("nan", False):
        data = data.copy()
        inside = np.flatnonzero(segm.data)
        data.ravel()[inside[:: max(1, inside.size // 40)]] = np.nan
    if shift:
        data = data - np.float32(np.percentile(data[segm.data > 0], 30))
    params.update(change)
    if params["connectivity"] == 4:
        from photutils.segmentation import detect_sources

        segm = detect_sources(
            data, float(np.percentile(data, 90)), n_pixels=params["n_pixels"], connectivity=4
        )
    assert data.dtype == np.float32 and matches_photutils(data)
    peaks = np.intersect1d(multi_peak_labels(data, segm.data), segm.labels)
    n_split = []
    for labels in (segm.labels, peaks[::2]):
        want, want_warn = _photutils(data, segm, labels, params)
        (got, children, info), got_warn = _ours(data, segm, labels, params)
        assert got.dtype == want.data.dtype
        np.testing.assert_array_equal(got, want.data)
        want_children = want.parent_to_deblended_labels
        assert list(children) == list(want_children)
        for k, v in want_children.items():
            assert children[k].dtype == v.dtype
            np.testing.assert_array_equal(children[k], v)
        assert got_warn == want_warn
        assert bool(want_warn) == shift  # the shifted frame really changes the mode
        n_split.append(len(want_children))
        want_info = want.__dict__.get("info", {})
        assert info.keys() == want_info.keys()
        for kind, entry in want_info.get("warnings", {}).items():
            assert info["warnings"][kind]["message"] == entry["message"]
            np.testing.assert_array_equal(
                info["warnings"][kind]["input_labels"], entry["input_labels"]
            )
    if not change and not shift and not np.isnan(data).any():
        assert n_split[0] >= 2  # the case really deblends something


def test_deblend_segments_bad_inputs(frame):
    data, segm, params = frame
    with pytest.raises(ValueError, match="contrast"):
        deblend_segments(data, segm, segm.labels, **{**params, "contrast": 1.0})
    with pytest.raises(ValueError, match="mode"):
        deblend_segments(data, segm, segm.labels, **{**params, "mode": "cubic"})
    with pytest.raises(ValueError, match="shape"):
        deblend_segments(data[1:], segm, segm.labels, **params)
    with pytest.raises(ValueError):
        deblend_segments(data, segm, [segm.max_label + 5], **params)  # not a label


def test_multi_peak_labels_within_some_segments(frame):
    data, segm, _ = frame
    every = multi_peak_labels(data, segm.data)
    assert every.size > 4
    some = segm.labels[::3]
    within = np.isin(segm.data, some)
    np.testing.assert_array_equal(
        multi_peak_labels(data, segm.data, within), np.intersect1d(every, some)
    )


def _same_segmentation(got, want):
    assert (got is None) == (want is None)
    if want is None:
        return
    assert got.data.dtype == want.data.dtype
    np.testing.assert_array_equal(got.data, want.data)
    assert got.labels.dtype == want.labels.dtype
    np.testing.assert_array_equal(got.labels, want.labels)
    assert got.slices == want.slices
    assert got.parent_to_deblended_labels == want.parent_to_deblended_labels == {}


@pytest.mark.parametrize("connectivity", [8, 4])
def test_detect_segments_equals_photutils(frame, connectivity):
    from photutils.segmentation import detect_sources

    data, segm, _ = frame
    fp = np.ones(data.shape, bool)
    fp[:, :60] = False  # a coverage gap cutting segments
    fp[150:170, :] = False
    rms = float(np.std(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # photutils: NoDetectionsWarning
        for thresh, n_pixels in ((3 * rms, 10), (0.5 * rms, 5), (3 * rms, 1), (1e9, 10)):
            for inside in (None, fp):
                want = detect_sources(
                    data,
                    np.float32(thresh),
                    n_pixels,
                    connectivity=connectivity,
                    mask=None if inside is None else ~inside,
                )
                got = detect_segments(
                    data, np.float32(thresh), n_pixels, footprint=inside, connectivity=connectivity
                )
                _same_segmentation(got, want)
        # a threshold map, and a threshold that keeps only tiny (removed) components
        thr_map = np.where(np.arange(data.shape[1]) < 150, 2 * rms, 4 * rms).astype(np.float32)
        _same_segmentation(
            detect_segments(data, thr_map[None, :], 10, connectivity=connectivity),
            detect_sources(data, thr_map[None, :], 10, connectivity=connectivity),
        )
        top = np.float32(np.sort(data.ravel())[-3])  # 2 pixels above: all segments too small
        assert detect_segments(data, top, 10, connectivity=connectivity) is None
    with pytest.raises(ValueError, match="n_pixels"):
        detect_segments(data, 1.0, 0)
    with pytest.raises(ValueError, match="footprint"):
        detect_segments(data, 1.0, 10, footprint=np.zeros(data.shape, bool))
