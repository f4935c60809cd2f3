"""Every numeric option has a stated range, checked by one argparse type shared by all commands
(shown in --help, refused in one line before any work), the same ranges in the Python API
(TypeError / ValueError naming the argument), and the checks at the start of and during
`attnlab train`: a model no loader would read back is refused before training, and a run whose
numbers stop being finite stops without saving them."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

import attnlab
import attnlab.api
import attnlab.tasks.base
from attnlab.checkpoint import load_model_dir
from attnlab.cli import build_parser, main
from attnlab.options import (
    Range, finite_float, fraction, layers, non_negative_float, non_negative_int, positive_float, positive_int,
    probability, show_ranges,
)
from attnlab.tasks import TASKS
from attnlab.train import TrainConfig, TrainingDiverged, epoch_batches, train
from tiny_models import tiny_pipeline_dir
from tiny_tasks import demo_slices

TINY = ["--hidden", "16", "--layers", "1", "--heads", "2", "--d-ff", "32", "--word-dim", "16", "--char-filters", "8",
        "--batch-tokens", "300", "--warmup", "5", "--no-progress", "--threads", "1", "--segmenter-minutes", "0"]


# -- the ranges ---------------------------------------------------------------------------

def test_each_range_says_what_it_accepts():
    assert [str(r) for r in (positive_int, non_negative_int, finite_float, positive_float, non_negative_float,
                             probability, fraction, layers)] == [
        "an integer >= 1", "an integer >= 0", "a finite number", "a finite number > 0", "a finite number >= 0",
        "a number from 0 to 1", "a number >= 0 and < 1", "an integer from 1 to 64"]


@pytest.mark.parametrize("allowed, good, bad", [
    (positive_int, ["1", "8192", " 3 "], ["0", "-1", "1.5", "1e3", "x", "", "inf"]),
    (non_negative_int, ["0", "7"], ["-1", "nan"]),
    (positive_float, ["1e-3", "2", "1e308"], ["0", "-1", "inf", "-inf", "nan", "1e400", "x"]),
    (non_negative_float, ["0", "0.01"], ["-1", "-1e-9", "nan", "inf"]),
    (probability, ["0", "1", "0.5"], ["1.01", "-0.1", "nan"]),
    (fraction, ["0", "0.99"], ["1", "2", "-0.1"]),
    (finite_float, ["-3", "0", "1e5"], ["inf", "nan", "x"]),
    (layers, ["1", "64"], ["0", "65", "1000"]),
])
def test_argparse_types_accept_their_range_and_refuse_the_rest(allowed, good, bad):
    for text in good:
        assert allowed.contains(allowed(text))
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^expected {allowed.describe()}, got "):
            allowed(text)


def test_python_values_are_checked_by_type_then_range():
    assert positive_int.check(3, "n") == 3 and positive_float.check(2, "lr") == 2.0
    for value in (True, False, 2.0, "3", None, [1]):
        with pytest.raises(TypeError, match="^n must be an integer >= 1, not "):
            positive_int.check(value, "n")
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got 0$"):
        positive_int.check(0, "n")
    for value in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError, match="^lr must be a finite number > 0, got "):
            positive_float.check(value, "lr")
    with pytest.raises(TypeError, match="^lr must be a finite number > 0, not bool"):
        positive_float.check(True, "lr")


def _actions(parser: argparse.ArgumentParser, prog: str = "attnlab"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{prog} {name}")
        else:
            yield prog, action


def test_every_numeric_option_of_every_command_has_a_range_shown_in_its_help():
    numeric = [(prog, action) for prog, action in _actions(build_parser()) if action.type in (int, float)]
    assert numeric == [], [f"{prog} {action.option_strings}" for prog, action in numeric]
    ranged = [(prog, action) for prog, action in _actions(build_parser()) if isinstance(action.type, Range)]
    assert len(ranged) > 60  # every command's numbers: tag, eval, export, train (and its tasks), bench, serve ...
    for prog, action in ranged:
        assert action.help.endswith(f"[{action.type.describe()}]"), (prog, action.option_strings)
    shown = build_parser()
    show_ranges(shown)  # a second time adds nothing
    assert [a.help for _, a in _actions(shown)] == [a.help for _, a in _actions(build_parser())]


# -- the command line: the cases that were accepted silently or crashed ----------------------

BAD_OPTIONS = [
    (["tag", "--batch-size", "0"], "--batch-size", "an integer >= 1"),
    (["tag", "--batch-size", "-1"], "--batch-size", "an integer >= 1"),
    (["tag", "--threads", "0"], "--threads", "an integer >= 1"),
    (["eval", "--model", "en", "x.conllu", "--threads", "0"], "--threads", "an integer >= 1"),
    (["eval", "--model", "en", "x.conllu", "--batch-size", "0"], "--batch-size", "an integer >= 1"),
    (["export", "--model", "m", "--compare", "-", "--threads", "0"], "--threads", "an integer >= 1"),
    (["train", "--threads", "0"], "--threads", "an integer >= 1"),
    (["train", "--threads", "-1"], "--threads", "an integer >= 1"),
    (["train", "--max-minutes", "0"], "--max-minutes", "a finite number > 0"),
    (["train", "--max-minutes", "-1"], "--max-minutes", "a finite number > 0"),
    (["train", "--checkpoint-every", "-1"], "--checkpoint-every", "an integer >= 0"),
    (["train", "--weight-decay", "-1"], "--weight-decay", "a finite number >= 0"),
    (["train", "--lr", "inf"], "--lr", "a finite number > 0"),
    (["train", "--lr", "nan"], "--lr", "a finite number > 0"),
    (["train", "--label-smoothing", "2"], "--label-smoothing", "a number >= 0 and < 1"),
    (["train", "--layers", "65"], "--layers", "an integer from 1 to 64"),
    (["train", "--layers", "1000"], "--layers", "an integer from 1 to 64"),
    (["train", "--hidden", "100000"], "--hidden", "an integer from 1 to 65536"),
    (["train", "--xpos-weight", "nan"], "--xpos-weight", "a finite number >= 0"),
    (["train", "--seed", "-1"], "--seed", "an integer from 0 to 4294967295"),
    (["train", "--task", "seq2seq", "--beam", "0"], "--beam", "an integer from 1 to 64"),
    (["demo", "--epochs", "0"], "--epochs", "an integer >= 1"),
    (["serve", "--model", "en", "--port", "70000"], "--port", "an integer from 0 to 65535"),
    (["serve", "--model", "en", "--max-tokens", "0"], "--max-tokens", "an integer from 1 to 5000"),
    (["explain", "--model", "en", "x", "--layer", "0"], "--layer", "an integer >= 1"),
    (["data", "get", "ud-english-ewt", "--dest", "d", "--timeout", "0"], "--timeout", "a number > 0 and <= 86400"),
    (["data", "get", "ud-english-ewt", "--dest", "d", "--timeout", "1e10"], "--timeout", "a number > 0 and <= 86400"),
    (["bench", "attention", "--memory-budget-gib", "-1"], "--memory-budget-gib", "a finite number > 0"),
    (["bench", "serve", "--model", "en", "--clients", "65"], "--clients", "an integer from 1 to 64"),
    (["experiment", "speed", "--out", "o", "--threads", "0"], "--threads", "an integer >= 1"),
]


@pytest.mark.parametrize("argv, option, expected", BAD_OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_value_out_of_range_is_one_line_and_exit_2_before_any_work(argv, option, expected, tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.out == ""
    value = argv[argv.index(option) + 1]
    assert f"error: argument {option}: expected {expected}, got '{value}'" in captured.err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_bench_attention_skips_a_size_whose_inputs_exceed_the_budget(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "attention", "--quick", "--sizes", str(10**11), "--no-memory", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["results"] == [] and {s["n"] for s in report["skipped"]} == {10**11}
    assert all("and the (B, H, N, d) inputs = " in s["reason"] for s in report["skipped"])


def test_checkpoint_every_0_is_documented_as_epoch_ends_only(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--checkpoint-every CHECKPOINT_EVERY steps between checkpoints, besides the one at the end of each " \
           "epoch (default 200; 0: only those) [an integer >= 0]" in help_text


# -- the Python API ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tagger():
    return attnlab.load(tiny_pipeline_dir())


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-5, ValueError), ("x", TypeError), (True, TypeError), (2.5, TypeError), (None, TypeError),
])
def test_load_checks_batch_tokens_before_reading_the_model(value, error, monkeypatch):
    monkeypatch.setattr("attnlab.tasks.tagging.load_tagger", lambda d: pytest.fail("read the model"))
    with pytest.raises(error, match="^batch_tokens must be an integer >= 1"):
        attnlab.load("en", batch_tokens=value)


def test_a_tagger_checks_batch_tokens_too(tagger):
    with pytest.raises(ValueError, match="^batch_tokens must be an integer >= 1, got 0$"):
        attnlab.api.Tagger(tagger.loaded, batch_tokens=0)


@pytest.mark.parametrize("value, error", [(True, TypeError), (2.0, TypeError), ("1", TypeError), (-1, ValueError)])
def test_top_k_is_an_integer_not_a_bool(tagger, value, error):
    for call in (lambda: tagger("I saw a saw", top_k=value), lambda: tagger.tag([["I", "saw"]], top_k=value),
                 lambda: tagger.tag_conllu("1\tI\t_\t_\t_\t_\t_\t_\t_\t_\n\n", top_k=value)):
        with pytest.raises(error, match="^top_k must be an integer >= 0"):
            call()
    assert len(tagger("I saw", top_k=1000)[0][0].top["upos"]) == len(tagger.loaded.vocabs.upos)  # all tags, ranked


# -- attnlab train: the model is checked before training; non-finite numbers stop the run ------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    demo_slices(root, train=120, dev=20)
    return root


def _args(data, tmp_path, *options):
    return build_parser().parse_args(["train", "--train", str(data / "train.conllu"), "--dev",
                                      str(data / "dev.conllu"), "--out", str(tmp_path / "out"), *TINY, *options])


@pytest.mark.parametrize("task, attribute", [("tag", "layers"), ("classify", "layers"), ("seq2seq", "decoder_layers")])
def test_a_model_no_loader_reads_is_refused_by_the_loaders_check_before_training(task, attribute, data, tmp_path):
    from attnlab.data.conllu import read_conllu
    from attnlab.errors import UserError

    args = _args(data, tmp_path, "--task", task)
    setattr(args, attribute, 65)  # past argparse (the Python route): the build refuses it
    with pytest.raises(UserError, match=r"^the model to train: model\.\S*layers = 65 is out of range \(0 to 64\): "
                                        "no model loader would read it back$"):
        TASKS[task].build(args, read_conllu(data / "train.conllu"))
    assert not (tmp_path / "out").exists()


def test_a_model_too_large_for_the_machine_is_refused_before_it_takes_memory(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(attnlab.tasks.base, "_memory_bytes", lambda: 2**10)  # a machine of 1 KiB
    allocated = []
    monkeypatch.setattr("attnlab.train.train", lambda *a, **k: allocated.append(1))
    assert main(["train", "--train", str(data / "train.conllu"), "--dev", str(data / "dev.conllu"),
                 "--out", str(tmp_path / "out"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: the model to train has " in err and "more than this machine's" in err
    assert allocated == [] and not (tmp_path / "out").exists()


def test_train_lr_too_large_stops_with_an_error_and_saves_nothing_non_finite(data, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["train", "--train", str(data / "train.conllu"), "--dev", str(data / "dev.conllu"), "--out", str(out),
               "--epochs", "2", "--lr", "1e38", *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "error: training diverged at step " in err and "A lower learning rate" in err
    for directory in [out, *out.glob("checkpoints/step-*")]:
        if (directory / "model.safetensors").exists():
            assert all(torch.isfinite(t).all() for t in load_model_dir(directory).state.values())


def test_train_config_numbers_are_finite():
    for field, value in (("lr", math.inf), ("lr", math.nan), ("weight_decay", -1.0), ("weight_decay", math.nan),
                         ("clip_norm", math.inf), ("betas", (0.9, 1.0))):
        with pytest.raises(ValueError, match=f"^{field} must be "):
            TrainConfig(**{field: value})


class _Poisoned:
    """A training task whose loss is NaN from step ``nan_from`` on."""

    def __init__(self, inner, nan_from=None):
        self.inner, self.nan_from, self.steps = inner, nan_from, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loss(self, model, batch):
        self.steps += 1
        loss = self.inner.loss(model, batch)
        return loss * math.nan if self.nan_from is not None and self.steps >= self.nan_from else loss


def _tiny_run(seed=7):
    from attnlab.encoders import EncoderConfig
    from attnlab.features import FeatureConfig
    from attnlab.tasks.tagging import Tagger, TaggerConfig, TaggerVocabs, TaggingTask
    from attnlab.tasks.tagging_demo import toy_corpus

    corpus, dev = toy_corpus(60, seed=3), toy_corpus(12, seed=4)
    vocabs = TaggerVocabs.build(corpus)
    config = TaggerConfig(encoder="attention", features=FeatureConfig(word_dim=8, shape_dim=4, char_dim=6, char_filters=6,
                                                                      char_widths=(3,)),
                          encoder_config=EncoderConfig(hidden=16, layers=1, heads=2, d_ff=16))
    torch.manual_seed(seed)
    model = Tagger(config, vocabs)
    return model, TaggingTask(model, vocabs, corpus, dev)


CONFIG = TrainConfig(epochs=3, batch_tokens=60, lr=5e-3, warmup=4, schedule="linear", patience=0, seed=7,
                     checkpoint_every=4)


def _quiet():
    return dict(progress=False, log=lambda m: None)


def _finite(directory) -> dict:
    state = load_model_dir(directory).state
    assert all(torch.isfinite(t).all() for t in state.values()), directory
    return state


def test_a_nan_loss_stops_the_run_before_its_step_and_keeps_the_best_model(tmp_path):
    model, task = _tiny_run()
    per_epoch = len(epoch_batches(task.lengths(), CONFIG, 0))
    with pytest.raises(TrainingDiverged, match=rf"^training diverged at step {per_epoch + 1}: the loss is nan, the "
                                               rf"norm of its gradient nan; {tmp_path} keeps the best model so far "
                                               rf"\(epoch 1, step {per_epoch}\)"):
        train(model, _Poisoned(task, nan_from=per_epoch + 1), CONFIG, tmp_path, **_quiet())
    best = _finite(tmp_path)
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())  # the NaN step was not taken
    for checkpoint in tmp_path.glob("checkpoints/step-*"):
        _finite(checkpoint)


def test_weights_that_became_infinite_are_never_saved(tmp_path, monkeypatch):
    model, task = _tiny_run()
    config = TrainConfig(**{**CONFIG.to_json(), "epochs": 1})
    last = len(epoch_batches(task.lengths(), config, 0))
    step = torch.optim.AdamW.step

    def poisoning_step(self, *args, **kwargs):  # the last step of the epoch leaves an infinite weight
        out = step(self, *args, **kwargs)
        self._steps = getattr(self, "_steps", 0) + 1
        if self._steps == last:
            with torch.no_grad():
                model.upos_head.weight[0, 0] = math.inf
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoning_step)
    with pytest.raises(TrainingDiverged, match=r"1 weight tensors hold NaN or infinite values \(upos_head\.weight"):
        train(model, task, config, tmp_path, **_quiet())
    assert not (tmp_path / "model.safetensors").exists()
    for checkpoint in tmp_path.glob("checkpoints/step-*"):
        _finite(checkpoint)
