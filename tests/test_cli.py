"""The command line: `attnlab --help`, `attnlab steps` (numbers worked out independently), logging, pipes, bad input."""

import argparse
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from attnlab.cli import COMMANDS, build_parser, main
from attnlab.errors import MissingExtra, require_extra

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


# -- `attnlab steps`: numbers worked out by hand and with plain NumPy (not attnlab.reference) --

def test_steps_seed_0_worked_by_hand(capsys):
    assert main(["steps"]) == 0
    out = capsys.readouterr().out
    # the example's inputs and W^q, pinned
    np.testing.assert_array_equal(grab(out, "a^1"), [0.3, -0.5, -0.9, -1.0])
    np.testing.assert_array_equal(matrix_after(out, "  W^q =", 2), [[0.7, 0.1, -0.4, -0.2], [-0.9, -0.8, 0.3, 0.3]])
    np.testing.assert_array_equal(matrix_after(out, "  W^k =", 2), [[0.2, -0.2, 1.0, 1.0], [0.4, 0.3, 0.4, -0.2]])
    # q^1 = W^q a^1: 0.21 - 0.05 + 0.36 + 0.20 = 0.72 and -0.27 + 0.40 - 0.27 - 0.30 = -0.44
    np.testing.assert_allclose(grab(out, "q^1"), [0.72, -0.44], atol=5e-5)
    # k^1 = W^k a^1: 0.06 + 0.10 - 0.90 - 1.00 = -1.74 and 0.12 - 0.15 - 0.36 + 0.20 = -0.19
    np.testing.assert_allclose(grab(out, "k^1"), [-1.74, -0.19], atol=5e-5)
    # alpha_(1,1) = (0.72 * -1.74 + -0.44 * -0.19) / sqrt(2) = -1.1692 / 1.41421 = -0.82675
    assert "alpha_(1,1) = [ 0.7200, -0.4400] . [-1.7400, -0.1900] / 1.4142 =  -0.8267" in out


def normalized(scores, normalize):
    """alpha' from alpha over the last axis, as the README's table defines the three normalizers."""
    n = scores.shape[-1]
    if normalize == "softmax":
        e = np.exp(scores)
        return e / e.sum(-1, keepdims=True)
    if normalize == "relu":
        return np.maximum(scores, 0) / n
    return 1 / (1 + np.exp(-(scores - np.log(n))))  # sigmoid, shifted so that equal scores sum to about 1


@pytest.mark.parametrize("normalize,seed", [("softmax", 0), ("relu", 0), ("sigmoid", 3)])
def test_steps_numbers_follow_from_the_printed_inputs(capsys, normalize, seed):
    assert main(["steps", "--normalize", normalize, "--seed", str(seed)]) == 0
    out = capsys.readouterr().out
    # read the printed inputs and weights back, and recompute everything from them with matrix products
    a = np.array([grab(out, f"a^{i}") for i in range(1, 5)])  # (n, D_in), one input per row
    Wq, Wk, Wv = (matrix_after(out, f"  {name} =", 2) for name in ("W^q", "W^k", "W^v"))
    q, k, v = a @ Wq.T, a @ Wk.T, a @ Wv.T  # (n, d)
    alpha = q @ k.T / np.sqrt(2)  # (n queries, n keys)
    alpha_prime = normalized(alpha, normalize)
    b = alpha_prime @ v
    for i in range(4):
        np.testing.assert_allclose(grab(out, f"q^{i + 1}"), q[i], atol=1e-4)
        np.testing.assert_allclose(grab(out, f"v^{i + 1}"), v[i], atol=1e-4)
        np.testing.assert_allclose(grab(out, f"  b^{i + 1}"), b[i], atol=1e-4)
    printed_alpha = [float(re.search(rf"alpha_\(1,{j}\) = .* = +({FLOAT})", out).group(1)) for j in range(1, 5)]
    np.testing.assert_allclose(printed_alpha, alpha[0], atol=1e-4)
    printed_weights = [float(re.search(rf"alpha'_\(1,{j}\) = ({FLOAT})", out).group(1)) for j in range(1, 5)]
    np.testing.assert_allclose(printed_weights, alpha_prime[0], atol=1e-4)
    np.testing.assert_allclose(vec(re.search(r"      = (\[[^\]]*\])", out).group(1)), b[0], atol=1e-4)
    # the matrix form: A = K^T Q / sqrt(d) holds alpha_(i,.) as column i; O = V A' holds the b^i as columns
    np.testing.assert_allclose(matrix_after(out, "  A = K^T Q", 4), alpha.T, atol=1e-4)
    np.testing.assert_allclose(matrix_after(out, "  O = V A'", 2), b.T, atol=1e-4)
    assert float(re.search(r"max \|O\^T - b\| = (\S+)", out).group(1)) < 1e-12


def test_steps_two_heads_follow_from_the_example_weights(capsys):
    from attnlab.viz.steps import example, multi_head_example

    main(["steps"])
    out = capsys.readouterr().out
    a, *_ = example(0)
    Wq, Wk, Wv, Wo = multi_head_example(0)  # (4, 4) each
    q, k, v = a @ Wq.T, a @ Wk.T, a @ Wv.T  # (n, D)
    heads = []
    for h in range(2):
        cols = slice(2 * h, 2 * h + 2)  # head h owns 2 of the 4 dimensions
        weights = normalized(q[:, cols] @ k[:, cols].T / np.sqrt(2), "softmax")
        heads.append(weights @ v[:, cols])  # (n, 2)
        np.testing.assert_allclose(grab(out, f"q^(1,{h + 1}) = W^(q,{h + 1}) q^1"), q[0, cols], atol=1e-4)
        np.testing.assert_allclose(grab(out, f"b^(1,{h + 1})"), heads[h][0], atol=1e-4)
    concat = np.concatenate(heads, axis=1)
    np.testing.assert_allclose(grab(out, "concat [b^(1,1); b^(1,2)]"), concat[0], atol=1e-4)
    np.testing.assert_allclose(grab(out, "b^1 = W^O concat"), Wo @ concat[0], atol=1e-4)


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


# -- start-up: no torch for --help -----------------------------------------------------

# Command modules that still import torch when their parser is added (a module-level import).
TORCH_AT_IMPORT: dict[str, str] = {}


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("module", [
    pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=TORCH_AT_IMPORT[m])) if m in TORCH_AT_IMPORT else m
    for m in COMMANDS
])
def test_adding_a_commands_parser_does_not_import_torch(module):
    r = python(f"""
        import argparse, importlib, sys
        importlib.import_module({module!r}).add_parser(argparse.ArgumentParser().add_subparsers())
        print("torch" in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.xfail(bool(TORCH_AT_IMPORT), strict=True, reason="; ".join(TORCH_AT_IMPORT.values()))
@pytest.mark.parametrize("argv", [["--help"], ["steps", "--help"], ["explain", "--help"], ["train", "--help"]])
def test_help_does_not_import_torch(argv):
    r = python(f"""
        import sys
        from attnlab.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        print("torch" in sys.modules, file=sys.stderr)
    """)
    assert "usage: attnlab" in r.stdout
    assert r.stderr.strip() == "False"


def test_every_command_says_what_it_does():
    def commands(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield f"{name} {sub_name}", sub
                    yield from commands(sub, f"{name} {sub_name}")

    found = dict(commands(build_parser(), "attnlab"))
    assert {"attnlab steps", "attnlab data get", "attnlab explain", "attnlab experiment"} <= set(found)
    for name, parser in found.items():
        assert len((parser.description or "").split()) >= 10, f"{name}: --help does not say what it does"


# -- logging, pipes, missing extras ------------------------------------------------------

NOISY_STEPS = """
    import logging, sys
    import attnlab.cli.steps as steps

    def noisy(args):
        logging.getLogger("matplotlib.font_manager").debug("matplotlib noise")
        logging.getLogger("attnlab.attention").debug("attnlab detail")
        logging.getLogger("attnlab.kernels").warning("attnlab warning")
        return 0

    steps.run = noisy
    from attnlab.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def test_verbose_shows_attnlabs_debug_messages_and_no_other_librarys():
    r = python(NOISY_STEPS, "-v", "steps")
    assert r.returncode == 0
    assert r.stderr.splitlines() == ["attnlab.attention: attnlab detail", "attnlab.kernels: attnlab warning"]
    r = python(NOISY_STEPS, "steps")
    assert r.stderr.splitlines() == ["attnlab.kernels: attnlab warning"]


@pytest.mark.parametrize("argv,code", [(["steps"], 141), (["--help"], 0)])  # argparse ignores the error itself
def test_a_closed_pipe_ends_the_command_quietly(argv, code):
    """`attnlab steps | head -1`: the reader is gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = subprocess.run([sys.executable, "-m", "attnlab", *argv], stdout=write_end, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    finally:
        os.close(write_end)
    assert r.stderr == ""
    assert r.returncode == code


def test_require_extra_names_the_extra_to_install(monkeypatch, capsys):
    require_extra("serve", ["json", "os.path"])  # importable: nothing happens
    with pytest.raises(MissingExtra, match=r"needs the 'hf' extra: pip install 'attnlab\[hf\]'"):
        require_extra("hf", ["json", "no_such_module_for_attnlab"])
    with pytest.raises(MissingExtra):
        require_extra("hf", ["no_such_package_for_attnlab.sub"])

    import attnlab.cli.steps as steps

    monkeypatch.setattr(steps, "run", lambda args: require_extra("serve", ["no_such_module_for_attnlab"]))
    assert main(["steps"]) == 2
    assert capsys.readouterr().err == "attnlab steps: needs the 'serve' extra: pip install 'attnlab[serve]'\n"
