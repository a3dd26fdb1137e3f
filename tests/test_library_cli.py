"""The ``library`` subcommand (jaxcomp.cli.library) and multi-process library generation."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxcomp.cli import main
from jaxcomp.cli.library import add_library_parser
from jaxcomp.library import LibraryConfig, generate_library, read_library
from jaxcomp.library.external import read_library_table

REPO = Path(__file__).resolve().parents[1]


def test_parser_plugs_into_a_parent_parser():
    parser = argparse.ArgumentParser(prog="jaxcomp")
    commands = parser.add_subparsers(dest="command", required=True)
    add_library_parser(commands)
    args = parser.parse_args(
        [
            "library",
            "--n",
            "100",
            "--seed",
            "1",
            "--radius",
            "K19",
            "--out",
            "lib.parquet",
            "--fits",
            "--workers",
            "2",
            "--quiet",
        ]
    )
    assert (args.n, args.seed, args.radius, args.out, args.fits, args.workers, args.quiet) == (
        100,
        1,
        "K19",
        Path("lib.parquet"),
        True,
        2,
        True,
    )
    assert callable(args.func)
    for bad in (
        ["library", "--n", "0", "--out", "x.parquet"],
        ["library", "--radius", "gauss", "--out", "x.parquet"],
        ["library", "--n", "5"],
        ["library", "--n", "5", "--from", "a.fits", "--out", "x.parquet"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_generate_writes_parquet_and_fits(tmp_path, capsys):
    out = tmp_path / "lib.parquet"
    status = main(
        [
            "library",
            "--n",
            "30",
            "--seed",
            "2",
            "--radius",
            "K19",
            "--out",
            str(out),
            "--fits",
            "--chunk-size",
            "10",
            "--quiet",
        ]
    )
    assert status == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib.fits", "lib.parquet"]
    frame = read_library(out)
    reference = generate_library(30, LibraryConfig(radius_model="K19", chunk_size=10), seed=2)
    np.testing.assert_array_equal(frame.drop(columns=[]).to_numpy(), reference.to_numpy())
    assert frame.attrs["jaxcomp_library"]["config"]["radius_model"] == "K19"
    from_fits = read_library_table(tmp_path / "lib.fits")
    np.testing.assert_allclose(from_fits["mag_F555W"], frame["mag_F555W"])
    assert from_fits.attrs["jaxcomp_library"]["seed"] == 2
    assert "wrote" in capsys.readouterr().out


def test_import_validates_and_reports_errors(tmp_path, capsys):
    table = pd.DataFrame(
        {
            "cluster_id": [0, 1],
            "log_mass": [3.0, 4.0],
            "log_age": [6.5, 8.0],
            "av": [0.1, 1.0],
            "r_eff_pc": [2, 3],
            "mag_F555W": [23.0, 21.0],
        }
    )
    table.to_csv(tmp_path / "ext.csv", index=False)
    assert (
        main(
            ["library", "--from", str(tmp_path / "ext.csv"), "--out", str(tmp_path / "ext.parquet")]
        )
        == 0
    )
    assert read_library(tmp_path / "ext.parquet")["mag_F555W"].tolist() == [23.0, 21.0]
    table.drop(columns=["r_eff_pc"]).to_csv(tmp_path / "bad.csv", index=False)
    assert (
        main(
            ["library", "--from", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "bad.parquet")]
        )
        == 2
    )
    assert "lacks required column(s) ['r_eff_pc']" in capsys.readouterr().err
    assert main(["library", "--n", "5", "--out", str(tmp_path / "x.csv")]) == 2
    assert "--out must end in .parquet or .fits" in capsys.readouterr().err
    assert not (tmp_path / "bad.parquet").exists()


def test_workers_from_a_script_piped_through_stdin(tmp_path):
    """generate_library(n_workers=2) works with spawn when __main__ is '<stdin>' and has no
    guard."""
    script = textwrap.dedent(
        """
        import numpy as np
        from jaxcomp.library import LibraryConfig, generate_library
        frame = generate_library(20, LibraryConfig(chunk_size=10), seed=5, n_workers=2)
        np.save("parallel.npy", frame.filter(like="mag_").to_numpy())
        print("ok", len(frame))
        """
    )
    result = subprocess.run(
        [sys.executable, "-"],
        input=script,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok 20"
    serial = generate_library(20, LibraryConfig(chunk_size=10), seed=5, n_workers=1)
    np.testing.assert_array_equal(
        np.load(tmp_path / "parallel.npy"), serial.filter(like="mag_").to_numpy()
    )
