"""The `kiln` command over .npy files written and read by NumPy."""
import os
import subprocess
import sys

import numpy as np
import pytest

KILN = os.environ.get("KILN_CLI") or os.path.join(os.path.dirname(__file__), "..", "..", "build", "kiln")


def run(*args, timeout=120):
    return subprocess.run([KILN, *args], capture_output=True, text=True, timeout=timeout)


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
    # STREAM and thread scaling run at 10^7 whatever the sizes: 77 s in the sanitizer build
    # on an idle 2-core machine, so more than the other commands' 2 minutes.
    res = run("bench", "--suite", "--sizes", "2000,4000", "--reps", "1", "--json", "--plot", str(svg), timeout=400)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert len(data["rows"]) == 40  # 10 expressions x float64, float32 x 2 sizes
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


# ---- .npy/.npz through the CLI: info, convert, eval over archive members, output to .npz.


def test_eval_reads_npz_members_and_writes_npz(tmp_path):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((50, 20))
    y = rng.standard_normal(20).astype(np.float32)
    arch = str(tmp_path / "in.npz")
    np.savez_compressed(arch, x=x, y=y)
    out = str(tmp_path / "r.npz")
    res = run("eval", "x * y + 1", f"x={arch}", f"y={arch}:y", "-o", out)
    assert res.returncode == 0, res.stderr
    with np.load(out) as f:
        assert list(f.keys()) == ["arr_0"]
        np.testing.assert_array_equal(f["arr_0"], x * y + 1)
    res = run("eval", "x", f"x={arch}:nope")
    assert res.returncode == 1
    assert "no member 'nope'" in res.stderr and "members: x, y" in res.stderr


def test_info_shows_header_and_summary(tmp_path):
    a = np.array([[1.5, np.nan, -2.0], [4.0, 0.5, np.nan]], dtype=">f8")
    path = str(tmp_path / "a.npy")
    np.save(path, np.asfortranarray(a))
    res = run("info", path)
    assert res.returncode == 0, res.stderr
    assert "descr '>f8' (big-endian), Fortran order" in res.stdout
    assert "dtype float64  shape (2, 3)  6 elements, 48 bytes" in res.stdout
    assert "min -2  max 4  mean 1  NaN 2" in res.stdout
    arch = str(tmp_path / "b.npz")
    np.savez(arch, first=np.arange(5, dtype=np.int32), second=np.zeros((0, 3)))
    res = run("info", arch)
    assert res.returncode == 0, res.stderr
    assert "2 members" in res.stdout
    assert "min 0  max 4  mean 2  NaN 0" in res.stdout
    assert "summary: empty" in res.stdout
    res = run("info", str(tmp_path / "missing.npy"))
    assert res.returncode == 1 and "missing.npy: No such file or directory" in res.stderr


@pytest.mark.parametrize("dtype", [None, "float32", "int64"])
def test_convert_between_npy_and_npz(tmp_path, dtype):
    a = np.linspace(-3, 3, 101).reshape(1, 101).T  # a Fortran-like view when saved
    src = str(tmp_path / "a.npy")
    np.save(src, a)
    extra = ["--dtype", dtype] if dtype else []
    want = a.astype(dtype) if dtype else a
    npz = str(tmp_path / "a.npz")
    assert run("convert", src, npz, "--compress", *extra).returncode == 0
    with np.load(npz) as f:
        got = f["arr_0"]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    back = str(tmp_path / "back.npy")
    res = run("convert", npz + ":arr_0", back)
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(np.load(back), want)


def test_convert_refuses_unknown_dtype_and_leaves_no_output(tmp_path):
    src = str(tmp_path / "a.npy")
    np.save(src, np.arange(3.0))
    res = run("convert", src, str(tmp_path / "b.npy"), "--dtype", "complex128")
    assert res.returncode == 2 and "unknown dtype 'complex128'" in res.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]


def test_long_saves_show_a_progress_bar_on_a_terminal_only(tmp_path):
    import pty

    src = str(tmp_path / "big.npy")
    np.save(src, np.zeros(9_000_000))  # 72 MB: above the bar's 64 MB threshold
    out = str(tmp_path / "copy.npy")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(KILN, [KILN, "convert", src, out])
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"save " + out.encode() in seen and b"100%" in seen
    np.testing.assert_array_equal(np.load(out), np.zeros(9_000_000))
    res = run("convert", src, out)  # not a terminal: nothing on stderr
    assert res.returncode == 0 and res.stderr == ""


def test_eval_creates_arrays_with_no_inputs(tmp_path):
    out = tmp_path / "s.npy"
    r = run("eval", "sin(arange(100000) * 0.01) + linspace(0, 1, 100000)", "-o", str(out))
    assert r.returncode == 0, r.stderr
    expected = np.sin(np.arange(100000) * 0.01) + np.linspace(0, 1, 100000)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-15, atol=1e-15)


def test_random_numbers_are_the_same_for_any_thread_count(tmp_path):
    outs = []
    for threads in ("1", "2", "5"):
        out = tmp_path / f"u{threads}.npy"
        r = run("eval", "normal(2, 3, size=(700, 301), seed=12) + uniform(seed=12) * 0 + integers(9, seed=4)",
                "-o", str(out), "--threads", threads)
        assert r.returncode == 0, r.stderr
        outs.append(np.load(out))
    assert all(np.array_equal(outs[0].view(np.uint64), o.view(np.uint64)) for o in outs[1:])
    assert abs(outs[0].mean() - (2 + 4)) < 0.05 and abs(outs[0].std() - np.sqrt(9 + 80 / 12)) < 0.05
    r = run("eval", "uniform(size=3)")
    assert r.returncode != 0 and "needs seed=" in r.stderr


def test_shm_list_and_rm():
    """`kiln shm list` shows segments (kiln's, NumPy's and foreign ones) and what they hold;
    `kiln shm rm` removes them, including a create's temporary left by a crash."""
    pid = os.getpid()
    npy, foreign, temp = f"kiln-cli-{pid}-a.npy", f"kiln-cli-{pid}-junk", f".kiln-new-kiln-cli-{pid}-x-1-0"
    np.save("/dev/shm/" + npy, np.zeros((3, 4), np.float32))
    with open("/dev/shm/" + foreign, "w") as f:
        f.write("hello")
    with open("/dev/shm/" + temp, "w") as f:
        f.write("")
    try:
        out = run("shm", "list").stdout
        lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
        assert "float32 (3, 4)" in lines[npy]
        assert "not a .npy image" in lines[foreign]
        assert "incomplete" in lines[temp]
        r = run("shm", "rm", npy, foreign, temp)
        assert r.returncode == 0, r.stderr
        assert not any(os.path.exists("/dev/shm/" + n) for n in (npy, foreign, temp))
        r = run("shm", "rm", npy)
        assert r.returncode == 1 and "no such segment" in r.stderr
        r = run("shm", "rm", "../etc/passwd")
        assert r.returncode == 1 and "invalid shared segment name" in r.stderr
    finally:
        for n in (npy, foreign, temp):
            if os.path.exists("/dev/shm/" + n):
                os.unlink("/dev/shm/" + n)
