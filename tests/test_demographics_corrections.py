"""Completeness-corrected CMF and CAF (Tang+2026 eq. 17-18) on simulated catalogues."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomp.demographics import (
    PiecewiseConstantAV,
    PowerLawLogAge,
    PowerLawLogMass,
    SelectionGrid,
    corrected_age_function,
    corrected_counts,
    corrected_mass_function,
    interpolate_marginal,
    p_corr_log_age,
    p_corr_log_mass,
    plot_corrected_distribution,
)
from jaxcomp.selection.synthetic import LogisticSelection


def _values(column) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)


@pytest.fixture(scope="module")
def simulated():
    """200k clusters from a known population, thinned by a known selection."""
    selection = LogisticSelection()
    with jax.enable_x64(True):
        mass = PowerLawLogMass(-1.6, 2.5, 6.5)
        age = PowerLawLogAge(-0.9, 6.0, 9.5)
        av = PiecewiseConstantAV([0.0, 0.75, 1.5, 2.25, 3.0], jnp.array([4.0, 3.0, 2.0, 1.0]))
        keys = jax.random.split(jax.random.PRNGKey(0), 3)
        n = 200_000
        log_mass = np.asarray(mass.sample(keys[0], (n,)))
        log_age = np.asarray(age.sample(keys[1], (n,)))
        extinction = np.asarray(av.sample(keys[2], (n,)))
        detected = np.random.default_rng(1).random(n) < selection(log_mass, log_age, extinction)
        grid = SelectionGrid.from_selection(selection, shape=(241, 141, 31))
        p_mass = np.asarray(p_corr_log_mass(grid, age, av))
        p_age = np.asarray(p_corr_log_age(grid, mass, av))
    return dict(
        log_mass=log_mass, log_age=log_age, detected=detected, grid=grid, p_mass=p_mass, p_age=p_age
    )


@pytest.mark.parametrize("quantity", ["log_mass", "log_age"])
def test_corrected_histogram_recovers_the_true_one(simulated, quantity):
    x, detected, grid = simulated[quantity], simulated["detected"], simulated["grid"]
    if quantity == "log_mass":
        bins = np.arange(2.5, 6.51, 0.25)
        p_i = np.asarray(interpolate_marginal(grid.log_mass, simulated["p_mass"], x[detected]))
        table = corrected_mass_function(x[detected], p_i, bins)
    else:
        bins = np.arange(6.0, 9.51, 0.25)
        p_i = np.asarray(interpolate_marginal(grid.log_age, simulated["p_age"], x[detected]))
        table = corrected_age_function(x[detected], p_i, bins)
    true, _ = np.histogram(x, bins)
    n_raw = _values(table["n_raw"])
    assert n_raw.sum() == np.sum(detected & (x >= bins[0]) & (x <= bins[-1]))
    assert n_raw.min() > 300  # every bin well populated
    z = (_values(table["n_corr"]) - true) / _values(table["n_corr_err"])
    assert np.all(np.abs(z) < 3.5), z
    assert abs(np.mean(z)) < 1.5  # the within-bin bias of eq. 17 stays below the Poisson error
    # the raw histogram is far from the truth where completeness is low: the correction matters
    raw_z = (n_raw - true) / np.sqrt(n_raw)
    assert np.max(np.abs(raw_z)) > 50
    # dN/dlog x columns are counts per unit width
    np.testing.assert_allclose(_values(table["dn_corr"]), _values(table["n_corr"]) / 0.25)
    # the band brackets the estimate
    assert np.all(_values(table["n_corr_lo"]) <= _values(table["n_corr"]) + 1e-9)
    assert np.all(_values(table["n_corr_hi"]) >= _values(table["n_corr"]) - 1e-9)


def test_clipping_masking_percentiles_and_empty_bins():
    values = np.array([0.1, 0.2, 0.3, 0.4, 1.5, 1.6, 2.5, np.nan, 5.0])
    p = np.array([0.5, 0.25, 0.5, 1.0, 1e-12, 1e-4, 0.2, 0.3, 0.5])
    bins = [0.0, 1.0, 2.0, 3.0, 4.0]
    age = corrected_age_function(values, p, bins)  # clip 1e-10, mask mean < 1e-3
    assert _values(age["n_raw"]).tolist() == [4, 2, 1, 0]
    assert _values(age["p_mean"])[0] == pytest.approx(0.5625)
    assert _values(age["n_corr"])[0] == pytest.approx(4 / 0.5625)
    p16, p84 = np.percentile([0.5, 0.25, 0.5, 1.0], [16, 84])
    assert _values(age["n_corr_hi"])[0] == pytest.approx(4 / p16)
    assert _values(age["n_corr_lo"])[0] == pytest.approx(4 / p84)
    assert bool(age["masked"][1]) and np.ma.is_masked(
        age["n_corr"][1]
    )  # mean (1e-10 + 1e-4)/2 < 1e-3
    assert not age["masked"][0] and not age["masked"][3]
    assert _values(age["n_corr"])[3] == 0.0 and np.isnan(_values(age["p_mean"])[3])
    assert age.meta["n_clipped"] == 1
    mass = corrected_mass_function(values, p, bins)  # clip 1e-3, no mask
    assert not np.any(mass["masked"])
    assert _values(mass["p_mean"])[1] == pytest.approx(1e-3)
    assert _values(mass["n_corr"])[1] == pytest.approx(2000.0)
    assert mass.colnames[:3] == ["log_mass_lo", "log_mass_hi", "log_mass_centre"]
    assert str(mass["log_mass_centre"].unit) == "dex(solMass)"
    # a callable p_corr gives the same table
    nodes, table_p = np.array([0.0, 5.0]), np.array([0.5, 0.5])
    by_callable = corrected_counts(values, lambda x: interpolate_marginal(nodes, table_p, x), bins)
    np.testing.assert_allclose(
        _values(by_callable["n_corr"])[:3], _values(by_callable["n_raw"])[:3] / 0.5
    )


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        corrected_counts([1.0, 2.0], [0.5], [0.0, 3.0])
    with pytest.raises(ValueError, match="outside"):
        corrected_counts([1.0, 2.0], [0.5, 1.5], [0.0, 3.0])
    with pytest.raises(ValueError, match="increasing"):
        corrected_counts([1.0, 2.0], [0.5, 0.5], [3.0, 0.0])


def test_plot_draws_raw_corrected_and_bands(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    x = rng.uniform(6, 9, 500)
    bins = np.linspace(6, 9, 7)
    tables = {
        "model A": corrected_age_function(x, rng.uniform(0.2, 0.9, 500), bins),
        "model B": corrected_age_function(x, rng.uniform(0.1, 0.8, 500), bins),
    }
    ax = plot_corrected_distribution(tables, shade=(8.3, 9.0), shade_label="> 200 Myr", title="CAF")
    assert ax.get_yscale() == "log"
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert {"raw", "model A", "model B", "> 200 Myr"} <= set(labels)
    assert len(ax.collections) >= 2  # the two bands
    ax.figure.savefig(tmp_path / "caf.png")
    plt.close(ax.figure)
