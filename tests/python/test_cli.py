"""The `kiln` command over .npy files written and read by NumPy."""
import os
import subprocess
import sys

import numpy as np
import pytest

KILN = os.environ.get("KILN_CLI") or os.path.join(os.path.dirname(__file__), "..", "..", "build", "kiln")


def run(*args):
    return subprocess.run([KILN, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.standard_normal(10001)
    b = rng.standard_normal(10001).astype(np.float32)
    m = np.asfortranarray(rng.standard_normal((40, 30)))
    paths = {}
    for name, arr in {"a": a, "b": b, "m": m, "i": np.arange(-50, 51, dtype=np.int32)}.items():
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], arr)
    return tmp_path, paths


@pytest.mark.parametrize(
    "expr, names, reference",
    [
        ("sqrt(a*a + b*b)", "ab", lambda d: np.sqrt(d["a"] * d["a"] + d["b"] * d["b"])),
        ("where(a > 0, a, 0.1*a)", "a", lambda d: np.where(d["a"] > 0, d["a"], 0.1 * d["a"])),
        ("2*b + 1", "b", lambda d: 2 * d["b"] + 1),  # stays float32
        ("m * 2 - 1", "m", lambda d: d["m"] * 2 - 1),  # Fortran-ordered input
        ("i // 7 + i % 3", "i", lambda d: d["i"] // 7 + d["i"] % 3),
        ("max(m, axis=0) - min(m, axis=1, keepdims=True)", "m",
         lambda d: np.max(d["m"], axis=0) - np.min(d["m"], axis=1, keepdims=True)),
        ("argmax(m, axis=1)", "m", lambda d: np.argmax(d["m"], axis=1)),
        ("sum(i, keepdims=True)", "i", lambda d: np.sum(d["i"], keepdims=True)),  # int32 sums to int64
        ("t = i * 2; t - min(t)", "i", lambda d: d["i"] * 2 - np.min(d["i"] * 2)),
    ],
)
def test_eval_matches_numpy(files, expr, names, reference):
    tmp, paths = files
    out = str(tmp / "r.npy")
    res = run("eval", expr, *[f"{n}={paths[n]}" for n in names], "-o", out)
    assert res.returncode == 0, res.stderr
    data = {n: np.load(paths[n]) for n in paths}
    want = reference(data)
    got = np.load(out)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_eval_without_output_prints_the_result(files):
    _, paths = files
    res = run("eval", "i * 2", f"i={paths['i']}")
    assert res.returncode == 0
    assert res.stdout.startswith("int32 (101,)\n[-100, -98,")


def test_errors_and_exit_codes(files):
    tmp, paths = files
    res = run("eval", "a +", f"a={paths['a']}")
    assert res.returncode == 1 and "parse error at position 3" in res.stderr
    res = run("eval", "a + c", f"a={paths['a']}")
    assert res.returncode == 1 and "unknown name 'c'" in res.stderr
    res = run("eval", "a + m", f"a={paths['a']}", f"m={paths['m']}")
    assert res.returncode == 1 and "shapes (10001,) and (40, 30) do not broadcast" in res.stderr
    res = run("eval", "a", f"a={tmp / 'missing.npy'}")
    assert res.returncode == 1 and "missing.npy" in res.stderr
    assert run("eval", "a", "not-a-binding").returncode == 2
    assert run("frobnicate").returncode == 2
    assert run().returncode == 2


def test_info_and_explain():
    res = run("info")
    assert res.returncode == 0 and "simd:" in res.stdout
    res = run("explain", "a*b + a*b", "a=f64[1000,300]", "b=f32[300]")
    assert res.returncode == 0
    assert res.stdout.count("multiply<float64>") == 1
    assert "cast<float32->float64>" in res.stdout
    res = run("explain", "(a - mean(a)) / std(a)", "a=f64[1000,300]")
    assert res.returncode == 0
    assert res.stdout.count("reduce over all axes") == 2 and "sqrt<float64>" in res.stdout
    assert run("explain", "a", "a=q8[3]").returncode == 2


def test_bench_suite_runs_its_json_parses_and_it_plots(tmp_path):
    import json
    import xml.dom.minidom
    svg = tmp_path / "bench.svg"
    res = run("bench", "--suite", "--sizes", "2000,4000", "--reps", "1", "--json", "--plot", str(svg))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert len(data["rows"]) == 36  # 9 expressions x float64, float32 x 2 sizes
    assert all(r["kiln_1_s"] > 0 and r["unfused_s"] > 0 and r["kiln_1_allocating_s"] > 0 for r in data["rows"])
    # Element-wise evaluation into out allocates no array at all; a full reduction at most its 0-d value.
    assert all(r["temp_bytes"] <= 8 for r in data["rows"]), data["rows"]
    assert 0 < data["scratch_bytes"] < 1 << 20
    # Two charts: bandwidth by size (one point per size on each line), and thread scaling.
    doc = xml.dom.minidom.parse(str(svg))
    titles = [t.firstChild.data for t in doc.getElementsByTagName("text")]
    assert any("bandwidth" in t for t in titles) and any("thread scaling" in t for t in titles)
    lines = doc.getElementsByTagName("polyline")
    assert len(lines[0].getAttribute("points").split()) == 2
    assert not (tmp_path / "bench.svg.tmp").exists()
    # An unwritable chart path fails before the measurements, naming the path.
    res = run("bench", "--suite", "--sizes", "2000", "--plot", str(tmp_path / "no" / "such" / "dir.svg"))
    assert res.returncode != 0 and "dir.svg" in res.stderr
    # kiln and the hand-written loop compute the same thing (loose: the loop uses -ffast-math).
    assert all(r["max_rel_diff_vs_hand"] < 1e-4 for r in data["rows"] if r["hand_s"] > 0), data["rows"]
