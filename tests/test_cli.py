"""The command line: `attnlab --help`, `attnlab steps` (numbers == the oracle), bad input."""

import re
import subprocess
import sys

import numpy as np
import pytest

from attnlab import reference
from attnlab.cli import main

FLOAT = r"-?\d+\.\d+"


def run(*args):
    return subprocess.run([sys.executable, "-m", "attnlab", *args], capture_output=True, text=True, timeout=120)


def vec(text):
    return np.array([float(x) for x in re.findall(FLOAT, text)])


def grab(out, label):
    """The vector printed after '<label> = ' on its line."""
    m = re.search(re.escape(label) + r" = (\[[^\]]*\])", out)
    assert m, f"{label!r} not in output"
    return vec(m.group(1))


def matrix_after(out, header, rows):
    lines = out[out.index(header):].splitlines()[1:1 + rows]
    return np.array([vec(line) for line in lines])


def test_help_lists_the_commands():
    r = run("--help")
    assert r.returncode == 0, r.stderr
    assert "steps" in r.stdout and "bench" in r.stdout and "usage: attnlab" in r.stdout


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: attnlab" in capsys.readouterr().out


@pytest.mark.parametrize("normalize,seed", [("softmax", 0), ("relu", 0), ("sigmoid", 3)])
def test_steps_prints_the_oracle_numbers(capsys, normalize, seed):
    assert main(["steps", "--normalize", normalize, "--seed", str(seed)]) == 0
    out = capsys.readouterr().out
    # read the printed inputs and weights back, and recompute everything from them
    a = np.array([grab(out, f"a^{i}") for i in range(1, 5)])
    Wq, Wk, Wv = (matrix_after(out, f"  {name} =", 2) for name in ("W^q", "W^k", "W^v"))
    s = reference.self_attention_steps(a, Wq, Wk, Wv, normalize=normalize)
    for i in range(4):
        np.testing.assert_allclose(grab(out, f"q^{i + 1}"), s.q[i], atol=1e-4)
        np.testing.assert_allclose(grab(out, f"v^{i + 1}"), s.v[i], atol=1e-4)
    alpha = [float(re.search(rf"alpha_\(1,{j}\) = .* = +({FLOAT})", out).group(1)) for j in range(1, 5)]
    np.testing.assert_allclose(alpha, s.alpha[0], atol=1e-4)
    alpha_prime = [float(re.search(rf"alpha'_\(1,{j}\) = ({FLOAT})", out).group(1)) for j in range(1, 5)]
    np.testing.assert_allclose(alpha_prime, s.alpha_prime[0], atol=1e-4)
    b1 = vec(re.search(r"      = (\[[^\]]*\])", out).group(1))
    np.testing.assert_allclose(b1, s.b[0], atol=1e-4)
    for i in range(4):
        np.testing.assert_allclose(grab(out, f"  b^{i + 1}"), s.b[i], atol=1e-4)
    # the matrix form: O = V A' holds the b^i as columns
    O = matrix_after(out, "  O = V A'", 2)
    np.testing.assert_allclose(O, s.b.T, atol=1e-4)
    assert float(re.search(r"max \|O\^T - b\| = (\S+)", out).group(1)) < 1e-12
    # two heads: b^1 = W^O [b^(1,1); b^(1,2)]
    b11, b12 = grab(out, "b^(1,1)"), grab(out, "b^(1,2)")
    np.testing.assert_allclose(grab(out, "concat [b^(1,1); b^(1,2)]"), np.concatenate([b11, b12]), atol=1e-4)
    assert "Multi-head self-attention with 2 heads" in out


def test_steps_multi_head_numbers_equal_the_oracle(capsys):
    from attnlab.viz import steps as walkthrough

    main(["steps"])
    out = capsys.readouterr().out
    a, *_ = walkthrough.example(0)
    rng = np.random.default_rng(1)  # the multi-head weights of seed 0
    Wq, Wk, Wv, Wo = (np.round(rng.uniform(-1, 1, size=(4, 4)), 1) + 0.0 for _ in range(4))
    mh = reference.multi_head_steps(a, Wq, Wk, Wv, Wo, 2)
    np.testing.assert_allclose(grab(out, "b^1 = W^O concat"), mh.b[0], atol=1e-4)
    np.testing.assert_allclose(grab(out, "q^(1,2) = W^(q,2) q^1"), mh.heads[1].q[0], atol=1e-4)
    np.testing.assert_allclose(grab(out, "b^(1,1)"), mh.heads[0].b[0], atol=1e-4)


def test_steps_runs_as_a_program():
    r = run("steps")
    assert r.returncode == 0, r.stderr
    assert "b^1 = W^O concat" in r.stdout


def test_steps_with_an_unknown_normalizer_exits_2():
    r = run("steps", "--normalize", "bogus")
    assert r.returncode == 2
    assert "--normalize: invalid choice: 'bogus'" in r.stderr
    assert r.stdout == ""


def test_unknown_command_exits_2():
    r = run("frobnicate")
    assert r.returncode == 2
    assert "invalid choice: 'frobnicate'" in r.stderr
