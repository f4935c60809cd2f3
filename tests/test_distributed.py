"""Data-parallel training: 2 gloo processes on CPU take the same steps as 1 process with
the same global batch (the loss of each share weighted by its tokens / target symbols)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))

from attnlab.checkpoint import read_tensors  # noqa: E402
from attnlab.train import TrainConfig, latest_checkpoint, rank_share, train  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # the spawned workers set their own threads too

STEPS = 3
CONFIG = TrainConfig(epochs=2, batch_tokens=90, lr=5e-3, warmup=2, schedule="linear", patience=0, seed=5,
                     checkpoint_every=0)


def build(kind: str):
    """A tiny model and task without dropout (so the processes draw no random numbers)."""
    from attnlab.encoders import EncoderConfig
    from attnlab.features import FeatureConfig

    torch.manual_seed(11)
    if kind == "tagging":
        from attnlab.tasks.tagging import Tagger, TaggerConfig, TaggerVocabs, TaggingTask
        from attnlab.tasks.tagging_demo import toy_corpus

        train_s, dev_s = toy_corpus(40, seed=3), toy_corpus(5, seed=4)
        vocabs = TaggerVocabs.build(train_s)
        config = TaggerConfig(
            encoder="attention",
            features=FeatureConfig(word_dim=8, shape_dim=4, char_dim=6, char_filters=6, char_widths=(3,),
                                   word_dropout=0.0, dropout=0.0),
            encoder_config=EncoderConfig(hidden=16, layers=1, heads=2, d_ff=16, dropout=0.0),
        )
        model = Tagger(config, vocabs)
        return model, TaggingTask(model, vocabs, train_s, dev_s)
    from tiny_tasks import lemma_corpus, random_stems

    from attnlab.tasks.seq2seq import LemmaVocab, Lemmatizer, Seq2seqConfig, Seq2seqTask, lemma_triples

    stems = random_stems(20, 1)
    train_s, dev_s = lemma_corpus(30, 1, stems), lemma_corpus(5, 2, stems)
    vocab = LemmaVocab.build(lemma_triples(train_s))
    model = Lemmatizer(Seq2seqConfig(d_model=16, heads=2, encoder_layers=1, decoder_layers=1, d_ff=32, dropout=0.0),
                       len(vocab))
    return model, Seq2seqTask(model, vocab, train_s, dev_s)


def run(kind: str, out: Path) -> dict:
    model, task = build(kind)
    train(model, task, CONFIG, out, stop_after_steps=STEPS, progress=False, log=lambda m: None)
    return model.state_dict()


def _worker(rank: int, world: int, port: int, root: str, kind: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from attnlab.checkpoint import atomic_write_bytes, tensors_bytes

    state = run(kind, Path(root) / f"{kind}-ddp")
    atomic_write_bytes(Path(root) / f"{kind}-rank{rank}.safetensors", tensors_bytes(state))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rank_share_splits_a_batch():
    batch = [7, 3, 9, 1, 4]
    shares = [rank_share(batch, r, 2) for r in range(2)]
    assert shares == [[7, 9, 4], [3, 1]]
    assert rank_share([5], 1, 2) == []


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_gloo_processes_match_one_process(tmp_path, monkeypatch):
    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    for kind in ("tagging", "seq2seq"):
        # one launch (one process group, one rendezvous port) per run, as torchrun does;
        # re-creating a group on a port the previous group just released can stall
        mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), kind), nprocs=2, join=True)
    for kind in ("tagging", "seq2seq"):
        single = run(kind, tmp_path / f"{kind}-single")
        fresh, _ = build(kind)
        ranks = [read_tensors(tmp_path / f"{kind}-rank{r}.safetensors") for r in range(2)]
        saved = read_tensors(latest_checkpoint(tmp_path / f"{kind}-ddp") / "model.safetensors")
        moved = 0.0
        for name, value in single.items():
            for other in (ranks[0], ranks[1], saved):
                torch.testing.assert_close(other[name], value, atol=1e-5, rtol=0, msg=f"{kind} {name}")
            moved = max(moved, float((value - fresh.state_dict()[name]).abs().max()))
        assert moved > 1e-3, f"{kind}: {STEPS} steps barely changed the weights ({moved})"
