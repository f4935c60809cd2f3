"""The training loop: learning-rate schedule, determinism, exact resume, Ctrl-C, early stopping."""

from __future__ import annotations

import errno
import json
import os
import signal

import pytest
import torch

from attnlab.checkpoint import CheckpointError, load_model_dir
from attnlab.encoders import EncoderConfig
from attnlab.features import FeatureConfig
from attnlab.tasks.tagging import Tagger, TaggerConfig, TaggerVocabs, TaggingTask, load_tagger
from attnlab.tasks.tagging_demo import toy_corpus
from attnlab.train import TrainConfig, latest_checkpoint, learning_rate, read_checkpoint_state, train

TRAIN, DEV = toy_corpus(60, seed=3), toy_corpus(12, seed=4)
# 60 sentences of ~6 tokens at 60 tokens per batch: about 6 batches per epoch
CONFIG = TrainConfig(epochs=3, batch_tokens=60, lr=5e-3, warmup=4, schedule="linear", patience=0, seed=7,
                     checkpoint_every=4)


pytestmark = pytest.mark.usefixtures("one_thread")


def build(seed: int = 7, encoder: str = "attention"):
    vocabs = TaggerVocabs.build(TRAIN)
    config = TaggerConfig(
        encoder=encoder,
        # dropout and word dropout on: the RNG state matters for an exact resume
        features=FeatureConfig(word_dim=8, shape_dim=4, char_dim=6, char_filters=6, char_widths=(3,),
                               word_dropout=0.1, dropout=0.1),
        encoder_config=EncoderConfig(hidden=16, layers=1, heads=2, d_ff=16, dropout=0.1),
    )
    torch.manual_seed(seed)
    model = Tagger(config, vocabs)
    return model, TaggingTask(model, vocabs, TRAIN, DEV)


def quiet(**kw):
    return dict(progress=False, log=lambda m: None, **kw)


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_learning_rate_schedule():
    cfg = TrainConfig(lr=1.0, warmup=4, schedule="linear")
    # warm-up: (step + 1) / warmup
    assert [learning_rate(cfg, s, 14) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    # then linear decay over the remaining 10 steps
    assert learning_rate(cfg, 4, 14) == 1.0 and learning_rate(cfg, 9, 14) == pytest.approx(0.5)
    assert learning_rate(cfg, 14, 14) == 0.0
    cos = TrainConfig(lr=2.0, warmup=0, schedule="cosine")
    assert learning_rate(cos, 0, 10) == pytest.approx(2.0) and learning_rate(cos, 5, 10) == pytest.approx(1.0)
    assert learning_rate(TrainConfig(lr=0.1, warmup=0, schedule="constant"), 99, 10) == 0.1


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    runs = []
    for i, seed in enumerate((7, 7, 8)):
        model, task = build(seed)
        cfg = TrainConfig(**{**CONFIG.to_json(), "seed": seed})
        train(model, task, cfg, tmp_path / f"run{i}", **quiet())
        runs.append(model.state_dict())
    assert_same_weights(runs[0], runs[1])
    assert not torch.equal(runs[0]["upos_head.weight"], runs[2]["upos_head.weight"])


def test_model_dir_holds_the_best_model(tmp_path):
    model, task = build()
    result = train(model, task, CONFIG, tmp_path, **quiet())
    assert result.status == "finished" and result.epoch == 3
    record = json.loads((tmp_path / "config.json").read_text())
    devs = [h["dev"] for h in result.history]
    assert len(devs) == 3
    assert record["best"]["dev_score"] == max(devs) == result.best_score
    assert record["best"]["epoch"] == devs.index(max(devs)) + 1
    assert record["train"]["seed"] == 7
    # the saved best model reproduces its dev score
    loaded = load_tagger(tmp_path)
    assert task.evaluate(loaded.model) == pytest.approx(result.best_score)


@pytest.mark.parametrize("stop_at", [3, 6, 11])  # mid-epoch, around an epoch boundary, in the last epoch
def test_resume_after_a_stop_gives_the_same_weights(tmp_path, stop_at):
    model, task = build()
    full = train(model, task, CONFIG, tmp_path / "full", **quiet())
    full_weights = model.state_dict()

    model, task = build()
    first = train(model, task, CONFIG, tmp_path / "cut", **quiet(stop_after_steps=stop_at))
    assert first.status == "stopped" and first.step == stop_at

    # a new process would rebuild everything from the checkpoint on disk
    checkpoint = latest_checkpoint(tmp_path / "cut")
    assert checkpoint.name == f"step-{stop_at:07d}"
    loaded = load_tagger(checkpoint)
    cfg = TrainConfig.from_json(read_checkpoint_state(checkpoint)["train_config"])
    task2 = TaggingTask(loaded.model, loaded.vocabs, TRAIN, DEV)
    second = train(loaded.model, task2, cfg, tmp_path / "cut", **quiet(resume_from=checkpoint))
    assert second.status == "finished" and second.step == full.step
    assert_same_weights(full_weights, loaded.model.state_dict())
    assert second.best_score == full.best_score and second.best_epoch == full.best_epoch
    assert [h["dev"] for h in second.history] == [h["dev"] for h in full.history]
    # and the best models on disk are the same
    assert_same_weights(load_model_dir(tmp_path / "full").state, load_model_dir(tmp_path / "cut").state)


def test_ctrl_c_saves_a_checkpoint_and_resume_matches(tmp_path):
    model, task = build()
    train(model, task, CONFIG, tmp_path / "full", **quiet())
    full_weights = model.state_dict()

    model, task = build()
    original_loss = task.loss
    calls = {"n": 0}

    def loss_with_interrupt(m, batch):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of step 5
        return original_loss(m, batch)

    task.loss = loss_with_interrupt
    before = signal.getsignal(signal.SIGINT)
    result = train(model, task, CONFIG, tmp_path / "cut", **quiet())
    assert result.status == "interrupted" and result.step == 5  # step 5 completes, then it stops
    assert signal.getsignal(signal.SIGINT) is before  # the handler it found is restored

    checkpoint = latest_checkpoint(tmp_path / "cut")
    loaded = load_tagger(checkpoint)
    task2 = TaggingTask(loaded.model, loaded.vocabs, TRAIN, DEV)
    train(loaded.model, task2, CONFIG, tmp_path / "cut", **quiet(resume_from=checkpoint))
    assert_same_weights(full_weights, loaded.model.state_dict())


def test_only_complete_checkpoints_are_kept_and_pointed_at(tmp_path):
    model, task = build()
    train(model, task, CONFIG, tmp_path, **quiet(stop_after_steps=9))
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest.json", "step-0000009"]
    names = sorted(p.name for p in (root / "step-0000009").iterdir())
    assert names == ["config.json", "model.safetensors", "optimizer.safetensors", "state.json", "vocab.json"]
    state = read_checkpoint_state(root / "step-0000009")["state"]
    assert state["step"] == 9


def test_corrupted_checkpoint_gives_a_clear_error(tmp_path):
    model, task = build()
    train(model, task, CONFIG, tmp_path, **quiet(stop_after_steps=5))
    checkpoint = latest_checkpoint(tmp_path)
    opt = checkpoint / "optimizer.safetensors"
    opt.write_bytes(opt.read_bytes()[: opt.stat().st_size // 2])
    model, task = build()
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors: not a valid safetensors file"):
        train(model, task, CONFIG, tmp_path, **quiet(resume_from=checkpoint))
    (tmp_path / "checkpoints" / "latest.json").write_text('{"dir": "step-9999999"}')
    with pytest.raises(CheckpointError, match="points at a missing checkpoint"):
        latest_checkpoint(tmp_path)


def test_early_stopping_counts_epochs_without_improvement(tmp_path):
    scores = iter([0.5, 0.6, 0.55, 0.6, 0.59, 0.9])

    model, task = build()
    task.evaluate = lambda m: next(scores)
    cfg = TrainConfig(**{**CONFIG.to_json(), "epochs": 6, "patience": 3})
    result = train(model, task, cfg, tmp_path, **quiet())
    # best 0.6 at epoch 2; epochs 3, 4, 5 do not beat it -> stop after epoch 5
    assert result.status == "early-stopped" and result.epoch == 5
    assert result.best_score == 0.6 and result.best_epoch == 2


def test_resume_removes_the_temporary_files_of_a_killed_save(tmp_path):
    model, task = build()
    train(model, task, CONFIG, tmp_path, **quiet(stop_after_steps=5))
    checkpoint = latest_checkpoint(tmp_path)
    orphans = [tmp_path / ".model.safetensors.x1y2z3w4.tmp", tmp_path / "checkpoints" / ".latest.json.abcd1234.tmp",
               checkpoint / ".optimizer.safetensors.0a1b2c3d.tmp", tmp_path / ".vocab.json.0123456789abcdef.staged"]
    for path in orphans:
        path.write_bytes(b"\0" * 1000)
    (tmp_path / "notes.tmp").write_text("not ours")
    loaded = load_tagger(checkpoint)
    train(loaded.model, TaggingTask(loaded.model, loaded.vocabs, TRAIN, DEV), CONFIG, tmp_path,
          **quiet(resume_from=checkpoint, stop_after_steps=6))
    assert [p for p in orphans if p.exists()] == []
    assert (tmp_path / "notes.tmp").exists()


def test_a_full_disk_during_a_checkpoint_is_one_line_and_loses_nothing(tmp_path, monkeypatch):
    from attnlab.errors import UserError

    model, task = build()
    train(model, task, CONFIG, tmp_path / "full", **quiet())
    full_weights = model.state_dict()

    model, task = build()
    train(model, task, CONFIG, tmp_path / "cut", **quiet(stop_after_steps=4))  # checkpoint at step 4

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    loaded = load_tagger(latest_checkpoint(tmp_path / "cut"))
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(UserError) as err:  # the checkpoint at step 5 (mid-epoch) does not fit
        train(loaded.model, TaggingTask(loaded.model, loaded.vocabs, TRAIN, DEV), CONFIG, tmp_path / "cut",
              **quiet(resume_from=latest_checkpoint(tmp_path / "cut"), stop_after_steps=5))
    monkeypatch.undo()
    message = str(err.value)
    assert message.startswith(str(tmp_path / "cut" / "checkpoints" / "step-0000005"))
    assert "no space left on the device" in message and "\n" not in message
    # the half-written checkpoint is gone, the one before it is whole and still the latest
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == ["latest.json", "step-0000004"]
    checkpoint = latest_checkpoint(tmp_path / "cut")
    loaded = load_tagger(checkpoint)
    train(loaded.model, TaggingTask(loaded.model, loaded.vocabs, TRAIN, DEV), CONFIG, tmp_path / "cut",
          **quiet(resume_from=checkpoint))
    assert_same_weights(full_weights, loaded.model.state_dict())


def test_a_time_limit_stops_after_one_step_with_a_partial_dev_score_and_resumes(tmp_path):
    from attnlab.train import TrainResult, describe_result

    model, task = build()
    full = train(model, task, CONFIG, tmp_path / "full", **quiet())
    full_weights = model.state_dict()

    model, task = build()
    cut = train(model, task, CONFIG, tmp_path / "cut", **quiet(max_minutes=0))
    assert (cut.status, cut.step, cut.epoch) == ("time-limit", 1, 0)
    assert [(h["step"], h["partial_epoch"]) for h in cut.history] == [(1, True)]
    assert cut.checkpoint == latest_checkpoint(tmp_path / "cut") and cut.checkpoint.name == "step-0000001"
    assert describe_result(cut, "M").splitlines()[1] == "continue with: attnlab train --resume --out M"
    loaded = load_tagger(cut.checkpoint)
    rest = train(loaded.model, TaggingTask(loaded.model, loaded.vocabs, TRAIN, DEV), CONFIG, tmp_path / "cut",
                 **quiet(resume_from=cut.checkpoint))
    assert rest.status == "finished" and rest.step == full.step
    assert_same_weights(full_weights, loaded.model.state_dict())
    # the partial epoch's dev score stays in the history, before the three whole epochs
    assert [h["partial_epoch"] for h in rest.history] == [True, False, False, False]
    done = TrainResult("finished", 30, 3, 0.875, 2, 90.0, None, [])
    assert describe_result(done, "M") == "finished: 3 epochs, 30 steps, 1.5 min; best dev 87.50% (epoch 2); model in M"
