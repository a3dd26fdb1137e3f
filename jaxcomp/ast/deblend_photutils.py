"""photutils' (3.0) ``detect_sources`` and ``deblend_sources``, same output, less work.

:func:`detect_segments` is ``detect_sources`` with the bounding boxes, sizes and
renumbering taken from the pixels above the threshold instead of whole-image passes.
:func:`deblend_segments` is ``deblend_sources`` (serial, ``relabel=False``) with a leaner
multi-threshold.

photutils deblends a segment by thresholding its cutout at ``n_levels`` levels between
its minimum and maximum, merging the components found level by level into markers,
and growing the markers by watershed (dropping the faintest one while any has less than
``contrast`` of the segment's flux). Each level goes through photutils'
``_detect_sources``, which also finds every component's bounding box and counts its
pixels in a Python loop, only for the deblender to discard the level unless it has at
least two components of ``n_pixels`` pixels (most levels have one). Here a level is one
comparison, one ``scipy.ndimage.label`` and one ``bincount``; once fewer than
``2 n_pixels`` pixels lie above a level no higher level is labelled (the thresholds
increase, so none of them can hold two such components), nor is any level at or above
the segment's second-highest local maximum (each component's brightest pixel is a local
maximum, so such a level holds at most one component). Everything else (the
thresholds, marker merging, watershed, contrast criterion, label numbering, the
parent-to-children map, the warnings and their ``info``) follows photutils step by step,
so the segmentation is identical; ``tests/test_ast_deblend_photutils.py`` compares both
functions with photutils.

The sum of a segment's pixels that the contrast criterion divides by is photutils'
``nansum``, which is numpy's unless bottleneck is installed and the data are float64;
:func:`deblend_segments` refuses that case (the caller then uses photutils itself).
"""

from __future__ import annotations

import functools
import importlib.util
import warnings

import numpy as np
from scipy.ndimage import label as _ndi_label

__all__ = ["deblend_segments", "detect_segments", "matches_photutils"]

_FOOTPRINTS = {
    8: np.ones((3, 3), dtype=int),
    4: np.array(((0, 1, 0), (1, 1, 1), (0, 1, 0))),
}


def matches_photutils(data: np.ndarray) -> bool:
    """Whether :func:`deblend_segments` reproduces photutils exactly for ``data``.

    photutils sums a segment's pixels with bottleneck (if installed) for float64 data, with
    numpy otherwise; :func:`deblend_segments` always uses numpy.
    """
    return np.asarray(data).dtype != np.float64 or not _has_bottleneck()


@functools.lru_cache(maxsize=1)
def _has_bottleneck() -> bool:
    return importlib.util.find_spec("bottleneck") is not None


def detect_segments(
    data: np.ndarray,
    threshold,
    n_pixels: int,
    *,
    footprint: np.ndarray | None = None,
    connectivity: int = 8,
):
    """photutils' ``detect_sources(data, threshold, n_pixels, connectivity=..., mask=~footprint)``.

    The same SegmentationImage (array, dtype, ``labels``, ``slices``), or None if no
    segment has ``n_pixels`` pixels above ``threshold`` (no warning). photutils scans the
    whole image to find every component's bounding box and relabels it whole; on an
    image mostly below the threshold (a local re-processing mosaic) the boxes, sizes and
    new labels come faster from the pixels above it.
    """
    from photutils.segmentation import SegmentationImage

    if int(n_pixels) != n_pixels or n_pixels <= 0:
        raise ValueError(f"n_pixels must be a positive integer, got {n_pixels!r}")
    if footprint is not None:
        if footprint.shape != data.shape:
            raise ValueError(
                f"footprint has shape {footprint.shape}, data {data.shape}; they must agree"
            )
        if not footprint.any():
            raise ValueError("the footprint has no pixel: there is nothing to detect sources in")
    with np.errstate(invalid="ignore"):
        img = data > threshold
    if footprint is not None:
        img &= footprint
    idx = np.flatnonzero(img)
    if idx.size == 0:
        return None
    lab, n = _ndi_label(img, structure=_FOOTPRINTS[connectivity])
    raw = lab.ravel()[idx]
    kept = np.flatnonzero(np.bincount(raw, minlength=n + 1)[1:] >= n_pixels) + 1
    if kept.size == 0:
        return None
    # bounding boxes (scipy.ndimage.find_objects') from the pixels above the threshold
    nx = lab.shape[1]
    rows = idx // nx
    cols = idx - rows * nx
    box = np.empty((4, n + 1), np.int64)
    box[0], box[1], box[2], box[3] = lab.shape[0], -1, nx, -1
    np.minimum.at(box[0], raw, rows)
    np.maximum.at(box[1], raw, rows)
    np.minimum.at(box[2], raw, cols)
    np.maximum.at(box[3], raw, cols)
    slices = [(slice(y0, y1 + 1), slice(x0, x1 + 1)) for y0, y1, x0, x1 in box[:, kept].T.tolist()]
    if kept.size == n:
        out = lab
        labels = np.arange(n, dtype=lab.dtype) + 1
    else:  # renumber the kept segments 1, 2, ... (the others become 0)
        label_map = np.zeros(n + 1, dtype=lab.dtype)
        label_map[kept] = np.arange(kept.size, dtype=lab.dtype) + 1
        out = np.zeros(lab.shape, lab.dtype)
        out.ravel()[idx] = label_map[raw]
        labels = np.arange(kept.size, dtype=lab.dtype) + 1
    segm = object.__new__(SegmentationImage)  # as photutils builds its result
    segm._data = out
    segm.__dict__["labels"] = labels
    segm.__dict__["slices"] = slices
    segm.__dict__["_deblend_label_map"] = {}
    return segm


def _labels(a: np.ndarray) -> np.ndarray:
    """The sorted non-zero values of ``a`` (photutils' ``_get_labels``)."""
    u = np.unique(a)
    return u[u != 0]


def _level(data, threshold, n_pixels: int, footprint, inside) -> tuple[np.ndarray | None, int]:
    """One multi-threshold level: the components above ``threshold`` with >= ``n_pixels`` pixels.

    Returns ``(labels, n_above)``: photutils' ``_detect_sources(..., relabel=False,
    return_segmimg=False)`` (None unless two or more components are kept; the smaller
    ones zeroed, labels not renumbered) and the number of pixels above the threshold.
    """
    with np.errstate(invalid="ignore"):
        img = data > threshold
    img &= inside
    n_above = int(np.count_nonzero(img))
    if n_above < 2 * n_pixels:  # at most one component can be kept
        return None, n_above
    lab, n = _ndi_label(img, structure=footprint)
    if n <= 1:
        return None, n_above
    small = np.bincount(lab.ravel(), minlength=n + 1) < n_pixels
    small[0] = False
    n_small = int(np.count_nonzero(small))
    if n - n_small <= 1:
        return None, n_above
    if n_small:
        lab[small[lab]] = 0
    return lab, n_above


def _thresholds(smin, smax, n_levels: int, mode: str, warns: dict) -> tuple[np.ndarray, str]:
    """photutils' ``compute_thresholds``: the levels strictly between the segment's min and max."""
    if mode == "exponential" and smin <= 0:
        warns["nonposmin"] = "non-positive minimum"
        mode = "linear"
    linear = np.linspace(smin, smax, n_levels + 2)
    if mode == "linear":
        thresholds = linear
    else:
        normalized = (linear - smin) / (smax - smin)
        if mode == "sinh":
            a = 0.25
            thresholds = np.sinh(normalized / a) / np.sinh(1.0 / a)
            thresholds *= smax - smin
            thresholds += smin
        else:  # exponential
            thresholds = smin * (smax / smin) ** normalized
    return thresholds[1:-1], mode


def _marker_segment(lower, upper, footprint):
    """photutils' ``make_marker_segment``: a lower-level parent with >= 2 upper children is
    replaced by them."""
    if lower is None:
        return upper
    new_markers = False
    markers = lower.astype(bool)
    for label in _labels(lower):
        mask = lower == label
        if _labels(upper[mask]).size >= 2:
            new_markers = True
            markers[mask] = upper[mask].astype(bool)
    if new_markers:
        return _ndi_label(markers, structure=footprint)[0]
    return lower


def _second_peak(data, inside, footprint) -> float:
    """Second-highest value of the segment's local-maximum candidates (+inf if unsure).

    A candidate is a segment pixel with no brighter neighbour (``footprint``
    connectivity) in the segment. The brightest pixel of every component above a level
    is one, so a level at or above this value holds at most one component (-inf: fewer
    than two candidates). Segments with NaN pixels, and non-float data, give +inf (no
    level is skipped).
    """
    if data.dtype.kind != "f" or np.isnan(data[inside]).any():
        return np.inf
    ny, nx = data.shape
    padded = np.full((ny + 2, nx + 2), -np.inf, dtype=data.dtype)
    padded[1:-1, 1:-1] = np.where(inside, data, -np.inf)
    candidate = inside.copy()
    for dy, dx in zip(*np.nonzero(footprint)):
        if dy == 1 and dx == 1:
            continue
        candidate &= ~(padded[dy : dy + ny, dx : dx + nx] > data)
    peaks = data[candidate]
    if peaks.size < 2:
        return -np.inf
    return peaks[np.argpartition(peaks, peaks.size - 2)[peaks.size - 2]]


def _markers(data, inside, thresholds, n_pixels: int, footprint, second_peak=np.inf):
    """photutils' ``make_markers``, skipping levels that cannot hold two components.

    Those are the levels at or above ``second_peak`` (:func:`_second_peak`) and, the
    thresholds increasing, those above a level with < 2 n_pixels pixels.
    """
    increasing = bool(np.all(thresholds[1:] >= thresholds[:-1]))
    if thresholds[0] >= second_peak:
        lower, n_above = None, 0
    else:
        lower, n_above = _level(data, thresholds[0], n_pixels, footprint, inside)
    for threshold in thresholds[1:]:
        if increasing and (n_above < 2 * n_pixels or threshold >= second_peak):
            break  # this and every higher level hold at most one component
        if threshold >= second_peak:
            continue
        upper, n_above = _level(data, threshold, n_pixels, footprint, inside)
        if upper is None:
            continue
        lower = _marker_segment(lower, upper, footprint)
    return lower


def _watershed(data, markers, inside, source_sum, contrast: float, footprint):
    """photutils' ``apply_watershed``: watershed, then drop the faintest marker below
    ``contrast``."""
    from scipy.ndimage import sum_labels
    from skimage.segmentation import watershed

    remove_marker = True
    while remove_marker:
        markers = watershed(-data, markers, mask=inside, connectivity=footprint)
        labels = _labels(markers)
        if labels.size == 1:
            remove_marker = False
        else:
            flux_frac = sum_labels(data, markers, index=labels) / source_sum
            remove_marker = any(flux_frac < contrast)
            if remove_marker:
                markers[markers == labels[np.argmin(flux_frac)]] = 0.0
    return markers


def _deblend_one(data, segment_data, label, n_pixels, footprint, n_levels, contrast, mode):
    """photutils' ``_SingleSourceDeblender(...).deblend_source()`` and its warnings."""
    warns: dict = {}
    inside = segment_data == label
    values = data[inside]
    smin, smax, ssum = np.nanmin(values), np.nanmax(values), np.nansum(values)
    if smin == smax:
        return None, warns
    thresholds, mode = _thresholds(smin, smax, n_levels, mode, warns)
    second = _second_peak(data, inside, footprint)
    markers = _markers(data, inside, thresholds, n_pixels, footprint, second)
    if markers is None:
        return None, warns
    if mode != "linear" and len(_labels(markers)) > 200:
        warns["nmarkers"] = "too many markers"
        thresholds, mode = _thresholds(smin, smax, n_levels, "linear", warns)
        markers = _markers(data, inside, thresholds, n_pixels, footprint, second)
        if markers is None:
            return None, warns
    markers = _watershed(data, markers, inside, ssum, contrast, footprint)
    if not np.array_equal(inside, markers.astype(bool)):
        raise ValueError(
            f"Deblending failed for source {label!r}. Please ensure you used the same pixel "
            "connectivity in detect_sources and deblend_sources."
        )
    labels = _labels(markers)
    if len(labels) == 1:
        return None, warns
    if not (labels[0] == 1 and labels[-1] == len(labels)):
        relabel_map = np.zeros(labels.max() + 1, dtype=markers.dtype)
        relabel_map[labels] = np.arange(len(labels)) + 1
        markers = relabel_map[markers]
    return markers, warns


def deblend_segments(
    data: np.ndarray,
    segm,
    labels,
    *,
    n_pixels: int,
    n_levels: int = 32,
    contrast: float = 0.001,
    mode: str = "exponential",
    connectivity: int = 8,
) -> tuple[np.ndarray, dict, dict]:
    """Deblend the segments ``labels`` of ``segm`` as photutils' ``deblend_sources`` does.

    The same result as ``deblend_sources(data, segm, n_pixels, labels=labels,
    n_levels=n_levels, contrast=contrast, mode=mode, connectivity=connectivity,
    relabel=False, n_processes=1)``, for ``0 <= contrast < 1`` and data for which
    :func:`matches_photutils` holds.

    Returns
    -------
    data : int ndarray
        The deblended segmentation (the children of parent ``p`` numbered after
        ``segm.max_label``, not relabelled).
    children : dict
        Parent label -> array of its children's labels (``parent_to_deblended_labels``).
    info : dict
        The result's ``info`` (``{"warnings": ...}`` if the mode was changed for some
        segment, else empty); the same AstropyUserWarning is issued.
    """
    from astropy.utils.exceptions import AstropyUserWarning

    if not matches_photutils(data):
        raise ValueError(
            "deblend_segments sums float64 pixels with numpy, photutils with bottleneck (which is "
            "installed): use photutils.segmentation.deblend_sources for float64 data"
        )
    if not 0 <= contrast < 1:
        raise ValueError(f"contrast must be >= 0 and < 1 (1: no deblending), got {contrast!r}")
    if mode not in ("exponential", "linear", "sinh"):
        raise ValueError(f"mode must be 'exponential', 'linear' or 'sinh', got {mode!r}")
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels!r}")
    if segm.shape != data.shape:
        raise ValueError(f"segm has shape {segm.shape}, data {data.shape}; they must agree")
    footprint = _FOOTPRINTS[connectivity]
    labels = np.atleast_1d(labels)
    indices = segm.get_indices(labels)  # checks the labels
    slices = segm.slices
    seg_data = segm.data
    areas = np.array(
        [np.count_nonzero(seg_data[slices[i]] == lab) for lab, i in zip(labels, indices)]
    )
    keep = areas >= n_pixels * 2
    labels, indices = labels[keep], indices[keep]
    out = seg_data.copy()
    children: dict = {}
    max_label = segm.max_label
    nonposmin_labels, nmarkers_labels = [], []
    for label, index in zip(labels, indices):
        sl = slices[index]
        deblended, warns = _deblend_one(
            data[sl], seg_data[sl], label, n_pixels, footprint, n_levels, contrast, mode
        )
        if "nonposmin" in warns:
            nonposmin_labels.append(label)
        if "nmarkers" in warns:
            nmarkers_labels.append(label)
        if deblended is not None:
            source_mask = deblended > 0
            new_segm = deblended[source_mask]
            out[sl][source_mask] = new_segm + max_label
            new_labels = _labels(new_segm) + max_label
            children[label] = new_labels
            max_label += len(new_labels)
    warning_info = {}
    if nonposmin_labels or nmarkers_labels:
        warnings.warn(
            "The deblending mode of one or more source labels from the input segmentation "
            f'image was changed from "{mode}" to "linear". See the "info" attribute for the '
            "list of affected input labels.",
            AstropyUserWarning,
        )
        if nonposmin_labels:
            warning_info["nonposmin"] = {
                "message": f"Deblending mode changed from {mode} to linear due to non-positive "
                "minimum data values.",
                "input_labels": np.array(nonposmin_labels),
            }
        if nmarkers_labels:
            warning_info["nmarkers"] = {
                "message": f"Deblending mode changed from {mode} to linear due to too many "
                "potential deblended sources.",
                "input_labels": np.array(nmarkers_labels),
            }
    return out, children, ({"warnings": warning_info} if warning_info else {})
