"""Validation on repeated injections (paper section 4.1), completeness maps and loss steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from jaxcomp.selection.calibration import calibration_report
from jaxcomp.selection.synthetic import LogisticSelection, simulate_labels
from jaxcomp.selection.validation import (
    EMPTY_BIN,
    NO_LOSS,
    PAPER_PERCENTILES,
    PIPELINE_STEPS,
    CallableSelection,
    binned_comparison,
    binned_completeness,
    binomial_floor,
    compare_completeness_maps,
    default_z_eps,
    dominant_loss_step,
    inverse_z_transform,
    magnitude_limit_locus,
    network_map,
    p_true_table,
    plot_binned_comparison,
    plot_completeness_maps,
    plot_dominant_loss_step,
    plot_error_cdf,
    plot_network_vs_magnitude_limit,
    plot_validation_reliability,
    plot_z_hexbin,
    ssp_magnitude_function,
    validate_selection,
    z_transform,
)

PHYSICAL = ("log_mass", "log_age", "av")
TRUTH = LogisticSelection()
#: A deliberately wrong network: its 50% mass limit is 0.5 dex too high.
WRONG = LogisticSelection(log_mass_50_young=TRUTH.log_mass_50_young + 0.5)
N_CLUSTERS, REPEATS = 2000, 30


@pytest.fixture(scope="module")
def labels():
    """A repeated-injection campaign drawn from a known selection surface."""
    return simulate_labels(N_CLUSTERS, repeats=REPEATS, seed=7, selection=TRUTH)


@pytest.fixture(scope="module")
def table(labels):
    return p_true_table(labels)


@pytest.fixture(scope="module")
def truth_result(table):
    return validate_selection(CallableSelection(TRUTH, PHYSICAL, "truth"), table, min_count=40)


@pytest.fixture(scope="module")
def wrong_result(table):
    return validate_selection(CallableSelection(WRONG, PHYSICAL, "wrong"), table, min_count=40)


def test_pipeline_steps_are_the_ast_stages():
    from jaxcomp.ast.pipeline import STAGES

    assert PIPELINE_STEPS == STAGES


# ----------------------------------------------------------------------------- p_true


def test_p_true_matches_the_known_probability(labels, table):
    assert len(table) == N_CLUSTERS
    assert np.all(table["n_repeats"] == REPEATS)
    ids = np.asarray(labels["cluster_id"])
    expected = np.bincount(ids, weights=np.asarray(labels["C"]), minlength=N_CLUSTERS)
    assert np.array_equal(np.asarray(table["n_detected"]), expected.astype(int))
    assert np.allclose(table["p_true"], expected / REPEATS)
    # the analytic probability is carried along, renamed so that it does not collide
    p = np.asarray(table["p_true_input"])
    assert np.allclose(p, TRUTH(table["log_mass"], table["log_age"], table["av"]))
    # binomial pulls of the clusters away from 0 and 1 are standard normal
    mid = (p > 0.05) & (p < 0.95)
    assert mid.sum() > 150
    pull = (np.asarray(table["n_detected"])[mid] - REPEATS * p[mid]) / np.sqrt(
        REPEATS * p[mid] * (1 - p[mid])
    )
    assert abs(pull.mean()) < 4 / np.sqrt(mid.sum())
    assert 0.85 < pull.std() < 1.15
    # and every cluster is within 5 sigma (plus one recovery) of its probability
    sigma = np.sqrt(p * (1 - p) / REPEATS)
    assert np.all(np.abs(table["p_true"] - p) <= 5 * sigma + 1.0 / REPEATS)


def test_p_true_is_independent_of_row_order_and_takes_the_first_repeat(labels):
    shuffled = labels.copy()
    shuffled["repeat"] = np.tile(np.arange(REPEATS), N_CLUSTERS)
    shuffled["note"] = np.where(shuffled["repeat"] == 0, "first", "later")
    order = np.random.default_rng(0).permutation(len(shuffled))
    a = p_true_table(shuffled)
    b = p_true_table(shuffled[order])
    for name in ("cluster_id", "log_mass", "n_repeats", "n_detected", "p_true"):
        assert np.array_equal(np.asarray(a[name]), np.asarray(b[name]))
    assert set(b["note"]) == {"first"}
    assert "repeat" not in b.colnames and "C" not in b.colnames


def test_p_true_table_errors(labels):
    with pytest.raises(KeyError, match="cluster_id"):
        p_true_table(labels, id_column="nope")
    with pytest.raises(KeyError, match="label"):
        p_true_table(labels, label_column="label")
    training = simulate_labels(50, repeats=1, seed=1)
    with pytest.raises(ValueError, match="training-design"):
        p_true_table(training)
    with pytest.raises(ValueError, match="empty"):
        p_true_table(labels[:0])
    bad = labels[:60].copy()
    bad["C"] = bad["C"].astype(float)
    bad["C"][3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        p_true_table(bad)
    bad = labels[:60].copy()
    bad["C"][0] = 2
    with pytest.raises(ValueError, match="0 and 1"):
        p_true_table(bad)
    bad = labels[:60].copy()
    bad["cluster_id"] = bad["cluster_id"].astype(float)
    bad["cluster_id"][5] = np.nan
    with pytest.raises(ValueError, match="missing"):
        p_true_table(bad)
    bad = labels[:60].copy()
    bad["log_mass"][1] += 0.1  # same id, another mass: not one cluster
    with pytest.raises(ValueError, match="does not identify"):
        p_true_table(bad)
    partial = labels[: REPEATS + 1]  # the second cluster has one injection
    with pytest.raises(ValueError, match="fewer than 2"):
        p_true_table(partial)
    assert len(p_true_table(partial, min_repeats=1)) == 2


# -------------------------------------------------------------------- validation


def _simulated_percentiles(p, repeats, n_sim=300, seed=123):
    """Percentiles of |k/R - p| for many simulated campaigns (a network equal to the truth)."""
    rng = np.random.default_rng(seed)
    k = rng.binomial(repeats, p, size=(n_sim, p.size))
    return np.percentile(np.abs(k / repeats - p), [50, 90, 95], axis=1)  # (3, n_sim)


def test_true_network_is_consistent_with_binomial_noise(table, truth_result, wrong_result):
    p = TRUTH(table["log_mass"], table["log_age"], table["av"])
    simulated = _simulated_percentiles(np.asarray(p), REPEATS)
    observed = np.array([truth_result.percentiles[k] for k in ("p50", "p90", "p95")])
    mean, spread = simulated.mean(axis=1), simulated.std(axis=1)
    print("observed", observed, "simulated", mean, "+-", spread)
    assert np.all(np.abs(observed - mean) <= 4 * spread + 1e-3)
    # the stored floor (from p_hat = truth) agrees with the simulation
    floor = np.array([truth_result.binomial_floor[k] for k in ("p50", "p90", "p95")])
    assert np.allclose(floor, mean, rtol=0.05, atol=1e-3)
    # a network 0.5 dex off is far outside the binomial noise
    wrong = np.array([wrong_result.percentiles[k] for k in ("p90", "p95")])
    assert np.all(wrong > simulated[1:].max(axis=1) * 2)
    assert wrong_result.calibration.ece > 5 * truth_result.calibration.ece


def test_validation_result_contents(labels, table, truth_result):
    r = truth_result
    assert r.name == "truth" and r.kind == "physical"
    assert r.n_clusters == N_CLUSTERS and r.n_injections == N_CLUSTERS * REPEATS
    assert np.allclose(r.abs_error, np.abs(r.p_hat - r.p_true))
    assert (
        r.paper_percentiles
        == PAPER_PERCENTILES["physical"]
        == {"p50": 0.007, "p90": 0.200, "p95": 0.356}
    )
    assert r.reference["photometric"] == {"p50": 0.006, "p90": 0.177, "p95": 0.321}
    assert set(r.binned) == {"log_mass", "log_age"}  # no magnitudes in the synthetic labels
    assert "mag_F555W" in r.skipped_columns
    assert r.binned["log_mass"].edges.size == 36
    # calibration against every per-repeat label equals the report on the raw labels
    p_row = TRUTH(labels["log_mass"], labels["log_age"], labels["av"])
    direct = calibration_report(p_row, np.asarray(labels["C"]))
    assert r.calibration.n == len(labels)
    assert r.calibration.brier == pytest.approx(direct.brier, rel=1e-9)
    assert r.calibration.ece == pytest.approx(direct.ece, rel=1e-9)
    record = json.loads(json.dumps(r.to_dict(per_cluster=True)))
    assert record["abs_p_hat_minus_p_true"] == r.percentiles
    assert len(record["per_cluster"]["p_hat"]) == N_CLUSTERS
    assert len(r.per_cluster_table()) == N_CLUSTERS


def test_validate_a_selection_function(table):
    import jax
    import jax.numpy as jnp

    from jaxcomp.selection import SelectionFunction
    from jaxcomp.selection.inputs import PHYSICAL_INPUTS
    from jaxcomp.selection.network import NetworkConfig, init_network

    config = NetworkConfig(3, (8,))
    _, weights = init_network(config, 0)
    sf = SelectionFunction.from_weights(
        input_specs=PHYSICAL_INPUTS,
        mean=np.array([5.0, 7.6, 1.5]),
        scale=np.array([1.7, 1.5, 0.9]),
        network_config=config,
        weights=jax.tree.map(lambda w: jnp.asarray(w)[None], weights),
    )
    result = validate_selection(sf, table, min_count=40)
    assert result.kind == "physical" and result.input_names == PHYSICAL
    assert np.allclose(result.p_hat, sf.predict(table), atol=1e-6)


def test_bins_with_fewer_than_min_count_clusters_are_omitted():
    values = np.concatenate(
        [np.full(100, 0.5), np.full(79, 1.5), np.full(80, 2.5), np.full(3, 34.5)]
    )
    p_true = np.linspace(0, 1, values.size)
    p_hat = p_true[::-1].copy()
    result = binned_comparison(values, p_true, p_hat, n_bins=35, range=(0, 35), column="x")
    assert result.counts[:4].tolist() == [100, 79, 80, 0]
    assert result.kept[:3].tolist() == [True, False, True]
    assert not result.kept[3:].any()
    assert np.isnan(result.mean_true[1]) and np.isnan(result.mean_predicted[1])
    assert result.mean_true[0] == pytest.approx(p_true[:100].mean())
    assert result.mean_predicted[2] == pytest.approx(p_hat[179:259].mean())
    relaxed = binned_comparison(values, p_true, p_hat, n_bins=35, range=(0, 35), min_count=79)
    assert relaxed.kept[:3].all()
    assert relaxed.kept[-1] == False  # noqa: E712 - 3 clusters
    json.dumps(result.to_dict())


def test_min_count_is_configurable_in_validate_selection(table):
    strict = validate_selection(TRUTH, table, input_names=PHYSICAL, min_count=80)
    loose = validate_selection(
        TRUTH, table, input_names=PHYSICAL, min_count=1, binned_columns=["log_mass"]
    )
    counts = strict.binned["log_mass"].counts
    assert np.array_equal(strict.binned["log_mass"].kept, counts >= 80)
    assert not strict.binned["log_mass"].kept.all()  # ~57 clusters per bin: some are below 80
    assert loose.binned["log_mass"].kept.all() and set(loose.binned) == {"log_mass"}


def test_validate_selection_errors(table):
    with pytest.raises(ValueError, match="input_names"):
        validate_selection(TRUTH, table)
    with pytest.raises(KeyError, match="mag_F555W"):
        validate_selection(lambda m: m, table, input_names=("mag_F555W",))
    with pytest.raises(KeyError, match="n_repeats"):
        validate_selection(
            TRUTH, Table({"log_mass": [3.0], "log_age": [7.0], "av": [1.0]}), input_names=PHYSICAL
        )
    edited = table.copy()
    edited["p_true"][0] = 0.123456
    with pytest.raises(ValueError, match="edited"):
        validate_selection(TRUTH, edited, input_names=PHYSICAL)
    holes = table.copy()
    holes["av"][:3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        validate_selection(TRUTH, holes, input_names=PHYSICAL)
    dropped = validate_selection(
        TRUTH, holes, input_names=PHYSICAL, drop_nonfinite=True, min_count=40
    )
    assert dropped.n_dropped == 3 and dropped.n_clusters == N_CLUSTERS - 3
    with pytest.raises(ValueError, match="outside"):
        validate_selection(lambda m, t, a: m, table, input_names=PHYSICAL)
    with pytest.raises(ValueError, match="returned"):
        validate_selection(lambda m, t, a: np.zeros(3), table, input_names=PHYSICAL)
    with pytest.raises(TypeError):
        validate_selection(42, table)


# ---------------------------------------------------------------------- z transform


def test_z_transform_round_trip():
    p = np.linspace(0.001, 0.999, 999)
    assert np.allclose(inverse_z_transform(z_transform(p)), p, rtol=0, atol=1e-12)
    assert z_transform(0.5) == 0.0
    assert np.isneginf(z_transform(0.0)) and np.isposinf(z_transform(1.0))
    assert inverse_z_transform(-np.inf) == 0.0 and inverse_z_transform(np.inf) == 1.0
    eps = default_z_eps([100, 50])
    assert eps == 0.005
    clipped = z_transform([0.0, 0.002, 0.5, 1.0], eps)
    assert clipped[0] == clipped[1] == -np.arctanh(1 - 2 * eps)
    assert clipped[3] == np.arctanh(1 - 2 * eps)
    assert np.allclose(inverse_z_transform(z_transform(p[5:-5], 0.005)), p[5:-5], atol=1e-12)
    with pytest.raises(ValueError):
        z_transform([0.2], eps=0.5)
    with pytest.raises(ValueError):
        z_transform([1.2])


def test_binomial_floor_of_certain_outcomes_is_zero():
    assert binomial_floor(np.array([0.0, 1.0, 1.0]), 10) == {"p50": 0.0, "p90": 0.0, "p95": 0.0}


# --------------------------------------------------------------- completeness maps


def test_binned_completeness_counts():
    labels = Table(
        {
            "log_age": [6.1, 6.2, 6.3, 8.5, 8.6, 9.9],
            "log_mass": [2.5, 2.6, 2.7, 3.0, 5.1, 6.9],
            "av": [0.1, 0.2, 2.5, 0.5, 2.9, 1.0],
            "C": [0, 1, 1, 1, 1, 0],
        }
    )
    m = binned_completeness(labels, bins=(2, 2), range=((6, 10), (2, 7)))
    assert m.counts.tolist() == [[3, 0], [1, 2]]
    assert m.n_recovered.tolist() == [[2, 0], [1, 1]]
    assert m.completeness[0, 0] == pytest.approx(2 / 3) and np.isnan(m.completeness[0, 1])
    low = binned_completeness(
        labels, bins=(2, 2), range=((6, 10), (2, 7)), mask=np.asarray(labels["av"]) < 1
    )
    assert low.counts.sum() == 3
    with pytest.raises(KeyError):
        binned_completeness(labels, x="log_T")


def test_network_map_fixed_and_averaged():
    x, y = np.linspace(6, 10, 7), np.linspace(2, 7, 5)
    fixed = network_map(TRUTH, x, y, input_names=PHYSICAL)
    assert fixed.fixed == {"av": 0.0} and fixed.p.shape == (7, 5)
    grid_t, grid_m = np.meshgrid(x, y, indexing="ij")
    assert np.allclose(fixed.p, TRUTH(grid_m, grid_t, 0.0))
    avs = np.linspace(0, 3, 4)
    averaged = network_map(TRUTH, x, y, average={"av": avs}, fixed={}, input_names=PHYSICAL)
    assert np.allclose(averaged.p, np.mean([TRUTH(grid_m, grid_t, a) for a in avs], axis=0))
    with pytest.raises(ValueError, match="missing"):
        network_map(TRUTH, x, y, fixed={}, input_names=PHYSICAL)


def test_magnitude_limit_locus_of_an_analytic_magnitude():
    def mag(log_mass, log_age):
        return 20.0 + 1.2 * np.asarray(log_age) - 2.5 * np.asarray(log_mass)

    ages = np.linspace(6, 10, 9)
    locus = magnitude_limit_locus(mag, 25.58, ages)
    assert np.allclose(locus, (20.0 + 1.2 * ages - 25.58) / 2.5, atol=1e-6)
    assert np.all(np.isnan(magnitude_limit_locus(mag, 80.0, ages)))  # never that faint in [0, 10]


def test_ssp_magnitude_function_follows_the_library():
    from jaxcomp.library import PopulationSynthesis

    model = PopulationSynthesis()
    mag_v = ssp_magnitude_function("F555W", model=model, n_ages=1041, log_age_range=(5.0, 10.2))
    per_msun = model.ssp_magnitudes([8.0], 0.0, distance_modulus=29.98)[
        0, model.bands.index("F555W")
    ]
    assert mag_v(3.0, 8.0) == pytest.approx(per_msun - 7.5, abs=0.02)
    assert mag_v(4.0, 8.0) - mag_v(3.0, 8.0) == pytest.approx(-2.5)
    assert np.isfinite(mag_v(3.0, np.array([5.0, 10.18]))).all()  # clamped outside the isochrones


# -------------------------------------------------------------------- loss steps


def _loss_table():
    """Four bins in (log_age, log_mass) with known first failing steps."""
    rows = []

    def add(t, m, flags, c):
        rows.append((t, m, *flags, c))

    lost_detect = (0, 0, 0, 0, 0)
    lost_ci = (1, 1, 0, 0, 0)
    lost_mv = (1, 1, 1, 1, 0)
    kept = (1, 1, 1, 1, 1)
    for _ in range(3):
        add(6.5, 2.5, lost_detect, 0)  # bin (0, 0): 3 detection, 1 CI
    add(6.5, 2.5, lost_ci, 0)
    for _ in range(2):
        add(8.5, 2.5, lost_mv, 0)  # bin (1, 0): 2 M_V, 2 recovered
        add(8.5, 2.5, kept, 1)
    add(6.5, 5.5, kept, 1)  # bin (0, 1): nothing lost
    add(8.5, 5.5, lost_ci, 0)  # bin (1, 1): 1 CI, 1 detection -> a tie
    add(8.5, 5.5, lost_detect, 0)
    columns = ("log_age", "log_mass", *PIPELINE_STEPS, "C")
    return Table(rows=rows, names=columns)


def test_dominant_loss_step_on_a_hand_table():
    loss = dominant_loss_step(_loss_table(), bins=(2, 2), range=((6, 10), (2, 7)))
    detected, ci, mv = 0, PIPELINE_STEPS.index("passes_ci"), PIPELINE_STEPS.index("passes_mv")
    assert loss.counts.tolist() == [[4, 1], [4, 2]]
    assert loss.n_lost.tolist() == [[4, 0], [2, 2]]
    assert loss.dominant[0, 0] == detected
    assert loss.dominant[1, 0] == mv
    assert loss.dominant[0, 1] == NO_LOSS
    assert loss.dominant[1, 1] == detected  # a tie goes to the earlier step
    assert loss.step_counts[ci, 0, 0] == 1 and loss.step_counts[detected, 0, 0] == 3
    assert loss.totals() == {
        "detected": 4,
        "passes_err": 0,
        "passes_ci": 2,
        "passes_nband": 0,
        "passes_mv": 2,
    }
    assert loss.dominant_fraction[0, 0] == pytest.approx(0.75)
    assert loss.dominant_names()[0, 1] == "none lost"
    sparse = dominant_loss_step(_loss_table(), bins=(4, 2), range=((6, 10), (2, 7)))
    assert sparse.dominant[1, 0] == EMPTY_BIN and sparse.dominant_names()[1, 0] == ""


def test_dominant_loss_step_errors():
    table = _loss_table()
    bad = table.copy()
    bad["C"][0] = 0
    bad["detected"][0] = bad["passes_err"][0] = bad["passes_ci"][0] = bad["passes_nband"][0] = 1
    bad["passes_mv"][0] = 1
    with pytest.raises(ValueError, match="disagree"):
        dominant_loss_step(bad, bins=2)
    with pytest.raises(KeyError, match="passes_ci"):
        dominant_loss_step(table[[c for c in table.colnames if c != "passes_ci"]], bins=2)
    nan = table.copy()
    nan["detected"] = nan["detected"].astype(float)
    nan["detected"][2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dominant_loss_step(nan, bins=2)


# ----------------------------------------------------------------------- figures


def test_figures_are_written_atomically(tmp_path, labels, truth_result, wrong_result):
    def mag(log_mass, log_age):
        return 20.0 + 1.2 * np.asarray(log_age) - 2.5 * np.asarray(log_mass)

    pairs = compare_completeness_maps(
        labels, TRUTH, av_edges=(0, 1.5, 3), input_names=PHYSICAL, n_grid=40, n_av=3, bins=10
    )
    loss = dominant_loss_step(_loss_table(), bins=(2, 2), range=((6, 10), (2, 7)))
    written = [
        plot_binned_comparison(
            {"truth": truth_result, "wrong": wrong_result}, tmp_path / "binned.png"
        ),
        plot_z_hexbin(truth_result, tmp_path / "hexbin.png", mincnt=1),
        plot_z_hexbin(wrong_result, tmp_path / "hexbin_omit.png", extremes="omit", mincnt=1),
        plot_error_cdf([truth_result, wrong_result], tmp_path / "cdf.png"),
        plot_error_cdf(truth_result, tmp_path / "cdf_linear.pdf", xscale="linear"),
        plot_validation_reliability(truth_result, tmp_path / "reliability.png"),
        plot_completeness_maps(pairs, tmp_path / "maps.png"),
        plot_network_vs_magnitude_limit(
            TRUTH,
            tmp_path / "mlim.png",
            mag_v=mag,
            input_names=PHYSICAL,
            x_grid=np.linspace(6, 10, 30),
            y_grid=np.linspace(2, 7, 30),
        ),
        plot_dominant_loss_step(loss, tmp_path / "loss.png"),
        truth_result.write_json(tmp_path / "validation.json"),
    ]
    for path in written:
        assert path.exists() and path.stat().st_size > 0, path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in written
    )  # no temporaries
    assert json.loads((tmp_path / "validation.json").read_text())["n_clusters"] == N_CLUSTERS
