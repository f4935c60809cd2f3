"""A run that spends a time budget: the epochs it plans after two timed epochs, the schedule
that holds the peak until then, the rule that stops it (converged, budget, planned epochs done)
as config.json records it, and the exact repeat of a planned run with --epochs K."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attnlab.checkpoint import load_model_dir
from attnlab.cli import main
from attnlab.train import (
    PLAN_AFTER, TrainConfig, TrainResult, default_patience, describe_result, epoch_batches, latest_checkpoint,
    learning_rate, plan_epochs, read_checkpoint_state, train,
)
from test_train_resume import assert_same_weights, build, quiet
from test_tagger_cli import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = dict(batch_tokens=60, lr=5e-3, warmup=4, schedule="cosine", seed=7, checkpoint_every=0)
STEP_SECONDS = 10.0


class StepClock:
    """A clock that moves ``seconds`` on every training step (the task's loss ticks it), so
    that the plan and the budget depend on the number of steps only."""

    def __init__(self, task, seconds=STEP_SECONDS, later=None, after_steps=None):
        self.now, self.steps = 0.0, 0
        loss = task.loss

        def ticking(model, batch):
            self.steps += 1
            late = after_steps is not None and self.steps > after_steps
            self.now += later if late else seconds
            return loss(model, batch)

        task.loss = ticking

    def __call__(self) -> float:
        return self.now


def batches_per_epoch(config: TrainConfig, epochs: int) -> list[int]:
    model, task = build()
    return [len(epoch_batches(task.lengths(), config, e)) for e in range(epochs)]


def test_plan_epochs_fills_the_rest_of_the_budget_with_epochs_like_the_timed_one():
    # 900 s budget, two epochs took 30 s, the second 10 s: 87 more fit
    assert plan_epochs(900, elapsed=30, epoch_seconds=10, done=2, cap=200) == 89
    assert plan_epochs(900, elapsed=30, epoch_seconds=10, done=2, cap=50) == 50
    assert plan_epochs(60, elapsed=90, epoch_seconds=10, done=2, cap=200) == 2  # over budget: no more
    assert default_patience(89) == 22 and default_patience(12) == 6


def test_the_learning_rate_holds_its_peak_until_decay_from_then_decays_to_zero():
    cfg = TrainConfig(lr=1.0, warmup=2, schedule="cosine")
    assert [learning_rate(cfg, s, 20, decay_from=10) for s in (0, 1, 2, 9, 10)] == [0.5, 1.0, 1.0, 1.0, 1.0]
    assert learning_rate(cfg, 15, 20, decay_from=10) == pytest.approx(0.5)
    assert learning_rate(cfg, 20, 20, decay_from=10) == 0.0
    # without a hold the cosine starts after the warm-up, as before
    assert learning_rate(cfg, 11, 20) == pytest.approx(0.5)


def test_a_planned_run_fits_the_budget_records_its_plan_and_repeats_exactly_with_epochs_k(tmp_path):
    plan = TrainConfig(epochs=200, patience=0, budget_minutes=1.0, plan_epochs=True, **BASE)
    n = batches_per_epoch(plan, PLAN_AFTER + 1)
    assert n[0] > 3  # several steps an epoch, so the hold and the cosine both matter
    fast = min(n[0], n[1])  # the faster timed epoch's steps
    # a budget for the two timed epochs and three more like the faster, plus 5 s
    budget = (STEP_SECONDS * (n[0] + n[1]) + 3 * STEP_SECONDS * fast + 5) / 60
    plan = TrainConfig(**{**plan.to_json(), "budget_minutes": budget})
    model, task = build()
    result = train(model, task, plan, tmp_path / "planned", **quiet(clock=StepClock(task)))
    assert (result.status, result.epoch, result.epochs) == ("finished", 5, 5)
    assert result.plan == {"epochs": 5, "epoch_seconds": STEP_SECONDS * fast,
                           "after_seconds": STEP_SECONDS * (n[0] + n[1]), "budget_minutes": budget, "cap": 200}
    record = json.loads((tmp_path / "planned" / "config.json").read_text())
    assert record["run"]["stopped_by"] == "finished" and record["run"]["epochs_run"] == 5
    assert record["run"]["plan"]["epochs"] == 5
    assert (record["train"]["epochs"], record["train"]["plan_epochs"]) == (5, False)
    load_model_dir(tmp_path / "planned")  # the updated config.json still commits the model's files
    assert describe_result(result, "M").startswith("finished the 5 planned epochs (they fit the ")

    # --epochs 5 with the same seed and no budget: the same steps, learning rates and weights
    fixed = TrainConfig(epochs=5, patience=0, **BASE)
    again, task2 = build()
    repeat = train(again, task2, fixed, tmp_path / "fixed", **quiet())
    assert repeat.step == result.step == sum(batches_per_epoch(fixed, 5))
    assert [h["dev"] for h in repeat.history] == [h["dev"] for h in result.history]
    assert_same_weights(model.state_dict(), again.state_dict())


def test_two_runs_with_the_same_seed_and_epochs_give_the_same_weights(tmp_path):
    cfg = TrainConfig(epochs=3, patience=None, **BASE)
    weights, scores = [], []
    for k in range(2):
        model, task = build()
        result = train(model, task, cfg, tmp_path / str(k), **quiet())
        weights.append(model.state_dict())
        scores.append([h["dev"] for h in result.history])
    assert_same_weights(*weights)
    assert scores[0] == scores[1]
    different, task = build()
    train(different, task, TrainConfig(**{**cfg.to_json(), "seed": 8}), tmp_path / "other", **quiet())
    assert any(not torch.equal(w, weights[0][k]) for k, w in different.state_dict().items())


def test_the_budget_stops_a_run_whose_epochs_get_slower_and_scores_the_partial_epoch(tmp_path):
    plan = TrainConfig(epochs=200, patience=0, budget_minutes=1.0, plan_epochs=True, **BASE)
    n = batches_per_epoch(plan, 3)
    budget_s = STEP_SECONDS * (n[0] + n[1]) + 4 * STEP_SECONDS * min(n[0], n[1])  # plans 2 + 4 epochs
    plan = TrainConfig(**{**plan.to_json(), "budget_minutes": budget_s / 60})
    model, task = build()
    # after the two timed epochs every step takes three times as long
    clock = StepClock(task, after_steps=n[0] + n[1], later=3 * STEP_SECONDS)
    result = train(model, task, plan, tmp_path, **quiet(clock=clock))
    assert result.plan["epochs"] == 6
    left = budget_s - STEP_SECONDS * (n[0] + n[1])
    steps_after = math.ceil(left / (3 * STEP_SECONDS))
    assert (result.status, result.step) == ("budget", n[0] + n[1] + steps_after)
    assert result.history[-1]["partial_epoch"] and result.epoch == 2 + steps_after // n[2]
    record = json.loads((tmp_path / "config.json").read_text())["run"]
    assert (record["stopped_by"], record["partial_epoch"], record["epochs"]) == ("budget", True, 6)
    assert "stopped by the " in describe_result(result, "M") and "continue with" not in describe_result(result, "M")
    # a --resume of a run the budget ended does nothing and says why it ended
    from attnlab.tasks.tagging import TaggingTask, load_tagger
    from test_train_resume import DEV, TRAIN

    loaded = load_tagger(result.checkpoint)
    again = train(loaded.model, TaggingTask(loaded.model, loaded.vocabs, TRAIN, DEV), plan, tmp_path,
                  **quiet(resume_from=result.checkpoint))
    assert (again.status, again.step) == ("budget", result.step)


def test_a_budget_without_a_plan_caps_a_run_of_given_epochs(tmp_path):
    cfg = TrainConfig(epochs=50, patience=0, budget_minutes=1.0, **BASE)
    model, task = build()
    result = train(model, task, cfg, tmp_path, **quiet(clock=StepClock(task)))
    assert (result.status, result.step, result.plan) == ("budget", 6, None)  # 6 steps of 10 s


def test_patience_one_stops_a_planned_run_once_dev_stops_improving(tmp_path):
    scores = iter([0.5, 0.7, 0.7, 0.9])
    plan = TrainConfig(epochs=200, patience=1, budget_minutes=60.0, plan_epochs=True, **BASE)
    model, task = build()
    task.evaluate = lambda m: next(scores)
    result = train(model, task, plan, tmp_path, **quiet(clock=StepClock(task)))
    assert (result.status, result.epoch, result.best_epoch) == ("early-stopped", 3, 2)
    assert result.plan["epochs"] > 3  # the plan left room: convergence stopped it
    record = json.loads((tmp_path / "config.json").read_text())["run"]
    assert (record["stopped_by"], record["epochs_run"], record["patience"]) == ("early-stopped", 3, 1)
    assert describe_result(result, "M").startswith("converged (no dev improvement for 1 epoch): 3 of ")


def test_the_summary_counts_whole_epochs():
    done = TrainResult("early-stopped", 30, 3, 0.875, 2, 90.0, None, [{"partial_epoch": False}], epochs=10, patience=1)
    assert done.summary()["epochs_run"] == 3 and done.summary()["partial_epoch"] is False


def test_the_command_line_records_the_plan_and_epochs_k_seed_s_repeats_it(tmp_path, capsys):
    from tiny_tasks import demo_slices

    data = tmp_path / "tb"
    data.mkdir()
    for split, path in demo_slices(data, train=120, dev=20, test=20).items():
        path.rename(data / f"tiny-{split}.conllu")
    assert main(["train", "--treebank", str(data), "--out", str(tmp_path / "a"), "--seed", "3",
                 "--budget-minutes", "0.04", *TINY]) == 0
    out = capsys.readouterr()
    record = json.loads((tmp_path / "a" / "config.json").read_text())
    k = record["run"]["plan"]["epochs"]
    assert record["run"]["stopped_by"] in ("finished", "budget", "early-stopped")
    assert f"planned {k} epochs" in out.err and f"--epochs {k} --seed 3 repeats this run" in out.err
    runs = []
    for name in ("b", "c"):
        # --patience 0: all k epochs, whatever k the clock of run "a" gave (its plan's patience
        # could otherwise stop a long plan early; patience never changes a step)
        assert main(["train", "--treebank", str(data), "--out", str(tmp_path / name), "--seed", "3",
                     "--epochs", str(k), "--patience", "0", *TINY]) == 0
        runs.append(load_model_dir(tmp_path / name).state)
    assert_same_weights(*runs)
    # the planned run's whole epochs are those of the run of k epochs: the same dev scores
    planned, fixed = (whole_epoch_scores(tmp_path / name) for name in ("a", "b"))
    assert len(fixed) == k and 1 <= len(planned) <= k
    assert planned == fixed[:len(planned)]


def whole_epoch_scores(out) -> list[float]:
    state = read_checkpoint_state(latest_checkpoint(out))["state"]
    return [h["dev"] for h in state["history"] if not h["partial_epoch"]]
