"""`attnlab train`, `attnlab eval`, `attnlab tag`, `attnlab demo`: the part-of-speech tagger.

    attnlab train --treebank DIR --encoder attention --out models/ewt-attention
    attnlab eval  --model models/ewt-attention DIR/test.conllu [--json]
    echo "I saw a saw ." | attnlab tag --model models/ewt-attention --format tsv
    attnlab demo
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from .data.tokenize import tokenize
from .encoders import ENCODERS

# Sizes per encoder when the command line does not give them.
ENCODER_DEFAULTS = {
    "none": {"hidden": 256, "layers": 1},
    "window": {"hidden": 256, "layers": 1, "window": 2},
    "cnn": {"hidden": 256, "layers": 3, "kernel": 3},
    "bilstm": {"hidden": 256, "layers": 2},
    "attention": {"hidden": 256, "layers": 2, "heads": 8, "d_ff": 512},
}


def add_parser(subparsers) -> None:
    _add_train(subparsers)
    _add_eval(subparsers)
    _add_tag(subparsers)
    _add_demo(subparsers)


# -- attnlab train ---------------------------------------------------------------------

def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a part-of-speech tagger (or, with --task, a sentence classifier or lemmatizer) on CoNLL-U data",
        description="Train a UPOS tagger (with XPOS as an auxiliary task) on CoNLL-U files. Data: --train/--dev, "
                    "or --treebank DIR, or the directory in $ATTNLAB_DATA. The best model on dev is kept in --out; "
                    "checkpoints in --out/checkpoints let --resume continue an interrupted run.",
    )
    data = p.add_argument_group("data")
    data.add_argument("--train", type=Path, help="training CoNLL-U file")
    data.add_argument("--dev", type=Path, help="development CoNLL-U file (early stopping)")
    data.add_argument("--treebank", type=Path, help="directory with *train.conllu and *dev.conllu (default: $ATTNLAB_DATA)")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--encoder", choices=ENCODERS, default="attention", help="context encoder (default attention)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--max-minutes", type=float, help="stop this run after this many minutes (checkpointed; --resume continues)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=24, help="epochs (default 24; the learning rate schedule spans them)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--batch-tokens", type=int, default=1000, help="tokens per batch (default 1000)")
    t.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate (default 1.5e-3)")
    t.add_argument("--warmup", type=int, default=200, help="warm-up steps (default 200)")
    t.add_argument("--schedule", choices=("linear", "cosine", "constant"), default="cosine")
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--patience", type=int, default=6, help="stop after this many epochs without dev improvement (0 = never)")
    t.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200; also every epoch)")
    s = p.add_argument_group("sizes (defaults depend on --encoder)")
    s.add_argument("--hidden", type=int, help="encoder width (bilstm: per direction)")
    s.add_argument("--layers", type=int, help="encoder layers")
    s.add_argument("--heads", type=int, help="attention heads")
    s.add_argument("--d-ff", type=int, help="attention feed-forward width")
    s.add_argument("--window", type=int, help="window encoder: +-k neighbours")
    s.add_argument("--kernel", type=int, help="cnn encoder: convolution width")
    s.add_argument("--positions", choices=("rotary", "sinusoidal", "learned", "none"), default="rotary", help="attention positions")
    s.add_argument("--dropout", type=float, default=0.2, help="encoder dropout (default 0.2)")
    s.add_argument("--word-dim", type=int, default=128)
    s.add_argument("--char-filters", type=int, default=64, help="char CNN filters per width")
    s.add_argument("--word-dropout", type=float, default=0.1)
    s.add_argument("--feature-dropout", type=float, default=0.25)
    s.add_argument("--xpos-weight", type=float, default=0.5, help="weight of the auxiliary XPOS loss (0 = off)")
    s.add_argument("--label-smoothing", type=float, default=0.0)
    from .tasks.commands import add_train_arguments

    add_train_arguments(p)
    p.set_defaults(func=cmd_train)


def _data_paths(args) -> tuple[Path, Path]:
    from .errors import UserError

    if args.train or args.dev:
        if not (args.train and args.dev):
            raise UserError("give both --train and --dev (or --treebank DIR)")
        return args.train, args.dev
    from .data.treebank import find_split, resolve_treebank

    directory = resolve_treebank(args.treebank)
    return find_split(directory, "train"), find_split(directory, "dev")


def _resume_point(args):
    """--resume: the latest checkpoint in --out and the training settings it was saved with."""
    from .train import TrainConfig, latest_checkpoint, read_checkpoint_state

    checkpoint = latest_checkpoint(args.out)
    return checkpoint, TrainConfig.from_json(read_checkpoint_state(checkpoint)["train_config"])


def _resume_data_paths(args, checkpoint: Path, record: dict) -> tuple[Path, Path]:
    """The data of a resumed run: the command line's when it names any, else the paths the
    checkpoint's ``record`` (its config.json) holds."""
    from .errors import UserError

    if args.train or args.dev or args.treebank:
        return _data_paths(args)
    data = record.get("data") or {}
    if data.get("train") and data.get("dev"):
        return Path(data["train"]), Path(data["dev"])
    raise UserError(f"{checkpoint}: no data paths recorded; give --train/--dev or --treebank")


def _new_run(args):
    """A fresh run of `attnlab train` (any task): --out must not hold a model yet. Returns the
    data paths and the training settings from the command line."""
    from .errors import UserError
    from .train import TrainConfig

    out: Path = args.out
    if (out / "config.json").exists() or (out / "checkpoints").exists():
        raise UserError(f"{out} already holds a model; use --resume to continue it or choose another --out")
    train_path, dev_path = _data_paths(args)
    config = TrainConfig(
        epochs=args.epochs, batch_tokens=args.batch_tokens, lr=args.lr, weight_decay=args.weight_decay,
        warmup=args.warmup, schedule=args.schedule, patience=args.patience, seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )
    return train_path, dev_path, config


def _run_training(args, model, task, config, train_path: Path, dev_path: Path, resume_from) -> int:
    """``attnlab.train.train`` into --out with the data paths recorded; the summary from rank 0.
    Exit status 130 when interrupted (--max-minutes or a signal), else 0."""
    from .train import describe_result, is_main_process, train

    result = train(model, task, config, args.out, resume_from=resume_from, max_minutes=args.max_minutes,
                   progress=not args.no_progress,
                   extra={"data": {"train": str(Path(train_path).resolve()), "dev": str(Path(dev_path).resolve())}})
    if is_main_process():
        print(describe_result(result, args.out))
    return 130 if result.status == "interrupted" else 0


def _tagger_config(args):
    from .encoders import EncoderConfig
    from .features import FeatureConfig
    from .tasks.tagging import TaggerConfig

    sizes = dict(ENCODER_DEFAULTS[args.encoder])
    for name in ("hidden", "layers", "heads", "d_ff", "window", "kernel"):
        value = getattr(args, name)
        if value is not None:
            sizes[name] = value
    encoder = EncoderConfig(**sizes, dropout=args.dropout, positions=args.positions)
    features = FeatureConfig(word_dim=args.word_dim, char_filters=args.char_filters, word_dropout=args.word_dropout,
                             dropout=args.feature_dropout)
    return TaggerConfig(encoder=args.encoder, features=features, encoder_config=encoder,
                        xpos_weight=args.xpos_weight, label_smoothing=args.label_smoothing)


def cmd_train(args) -> int:
    import torch

    from .errors import UserError
    from .data.conllu import check_tags, read_conllu
    from .tasks.tagging import Tagger, TaggerVocabs, TaggingTask, load_tagger
    from .tasks import commands
    from .train import is_main_process

    if commands.handles_train(args):
        return commands.cmd_train(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume:
        checkpoint, config = _resume_point(args)
        loaded = load_tagger(checkpoint)
        model, vocabs = loaded.model, loaded.vocabs
        train_path, dev_path = _resume_data_paths(args, checkpoint, loaded.record)
        train_sents, dev_sents = read_conllu(train_path), read_conllu(dev_path)
        resume_from = checkpoint
    else:
        train_path, dev_path, config = _new_run(args)
        train_sents, dev_sents = read_conllu(train_path), read_conllu(dev_path)
        if not train_sents:
            raise UserError(f"{train_path}: no sentences")
        vocabs = TaggerVocabs.build(train_sents)
        torch.manual_seed(args.seed)
        model = Tagger(_tagger_config(args), vocabs)
        resume_from = None
    check_tags(train_sents)
    check_tags(dev_sents)
    n_params = sum(p.numel() for p in model.parameters())
    n_tokens = sum(len(s.forms) for s in train_sents)
    main = is_main_process()  # under torchrun, rank 0 alone speaks
    if main:
        print(f"training {model.config.encoder} tagger ({n_params / 1e6:.2f}M parameters) on {train_path} "
              f"({len(train_sents):,} sentences, {n_tokens:,} tokens), dev {dev_path}, {torch.get_num_threads()} threads",
              file=sys.stderr)
    task = TaggingTask(model, vocabs, train_sents, dev_sents)
    return _run_training(args, model, task, config, train_path, dev_path, resume_from)


# -- attnlab eval ----------------------------------------------------------------------

def _add_eval(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="score a model (tagger, classifier or lemmatizer) on a CoNLL-U file",
        description="Score a model directory on a gold CoNLL-U file. Taggers: UPOS accuracy, accuracy on unknown "
                    "words (lowercased form not in the training data), per-tag precision/recall/F1 and the most "
                    "confused tag pairs. Classifiers: accuracy and macro-F1 beside a bag-of-words baseline. "
                    "Lemmatizers: exact match (all, known and unknown forms) beside the most-frequent-lemma baseline.",
    )
    p.add_argument("--model", type=Path, required=True, help="model directory (from attnlab train)")
    p.add_argument("file", type=Path, help="gold CoNLL-U file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch-size", type=int, default=8192, help="tokens per batch (default 8192)")
    p.add_argument("--threads", type=int, help="torch threads")
    from .tasks.commands import add_eval_arguments

    add_eval_arguments(p)
    p.set_defaults(func=cmd_eval)


def evaluate_file(model_dir: Path, path: Path, batch_tokens: int = 8192) -> dict:
    """Tag a gold CoNLL-U file with a model and score it (the data behind `attnlab eval`)."""
    from .data.conllu import read_conllu
    from .evaluate import score_tags
    from .tasks.tagging import load_tagger, predict

    loaded = load_tagger(model_dir)
    sentences = read_conllu(path)
    forms = [s.forms for s in sentences]
    start = time.perf_counter()
    upos, xpos = predict(loaded.model, loaded.encoder(), loaded.vocabs, forms, batch_tokens=batch_tokens)
    seconds = time.perf_counter() - start
    known = loaded.vocabs.features.is_known
    report = score_tags([s.upos for s in sentences], upos, [[not known(f) for f in s.forms] for s in sentences])
    result = {"model": str(model_dir), "file": str(path), "report": report, "seconds": seconds}
    if xpos is not None and any(s.xpos for s in sentences):
        result["xpos"] = score_tags([s.xpos for s in sentences], xpos)
    return result


def cmd_eval(args) -> int:
    import torch

    from .tasks import commands

    if commands.handles_eval(args):
        return commands.cmd_eval(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = evaluate_file(args.model, args.file, args.batch_size)
    report = result["report"]
    if args.json:
        obj = {"model": result["model"], "file": result["file"], "upos": report.to_json()}
        if "xpos" in result:
            obj["xpos_accuracy"] = result["xpos"].accuracy
        obj["tokens_per_s"] = report.tokens / max(result["seconds"], 1e-9)
        print(json.dumps(obj, indent=2))
    else:
        print(f"{result['file']}  (model {result['model']})")
        print(report.format())
        if "xpos" in result:
            print(f"\nXPOS accuracy    {100 * result['xpos'].accuracy:6.2f}%")
    return 0


# -- attnlab tag -----------------------------------------------------------------------



def _add_tag(subparsers) -> None:
    p = subparsers.add_parser(
        "tag", help="tag raw text or CoNLL-U with a trained model",
        description="Tag sentences: raw text (one sentence per line, tokenized by --tokenize) or CoNLL-U "
                    "(its words are tagged, every other column kept). FILE may be '-' or omitted for stdin.",
    )
    p.add_argument("--model", type=Path, required=True, help="model directory")
    p.add_argument("file", nargs="?", default="-", help="input file (default: stdin)")
    p.add_argument("--input", choices=("auto", "text", "conllu"), default="auto",
                   help="input format (auto: conllu for *.conllu files and input starting with '#' or a token line)")
    p.add_argument("--format", choices=("conllu", "tsv", "json"), default="conllu",
                   help="output: CoNLL-U, TSV (word, UPOS, XPOS; blank line between sentences) or JSON lines")
    p.add_argument("--tokenize", choices=("simple", "whitespace"), default="simple", help="tokenizer for text input")
    p.add_argument("--batch-size", type=int, default=8192, help="tokens per batch (default 8192)")
    p.add_argument("--output", "-o", type=Path, help="write here (atomically) instead of stdout")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--stats", action="store_true", help="print tokens/s to stderr")
    p.set_defaults(func=cmd_tag)


def _looks_like_conllu(text: str) -> bool:
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            return True
        return bool(re.match(r"^\d+(-\d+|\.\d+)?\t", line))
    return False


def _read_input(args):
    """(sentences as Sentence objects, whether the input was CoNLL-U)."""
    from .data.conllu import Sentence, parse_conllu

    if args.file == "-":
        text, name = sys.stdin.read(), "<stdin>"
    else:
        path = Path(args.file)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        name = str(path)
    kind = args.input
    if kind == "auto":
        kind = "conllu" if name.endswith(".conllu") or _looks_like_conllu(text) else "text"
    if kind == "conllu":
        return parse_conllu(text, name), True
    sentences = []
    for line in text.splitlines():
        words = tokenize(line, args.tokenize)
        if words:
            sentences.append(Sentence.from_words(words, text=line.strip()))
    return sentences, False


def cmd_tag(args) -> int:
    import torch

    from .data.conllu import format_conllu, write_conllu
    from .tasks.tagging import load_tagger, predict

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_tagger(args.model)
    sentences, _ = _read_input(args)
    start = time.perf_counter()
    upos, xpos = predict(loaded.model, loaded.encoder(), loaded.vocabs, [s.forms for s in sentences],
                         batch_tokens=args.batch_size)
    seconds = time.perf_counter() - start
    if args.format == "conllu":
        if args.output:
            write_conllu(sentences, args.output, upos=upos, xpos=xpos)
        else:
            sys.stdout.write(format_conllu(sentences, upos=upos, xpos=xpos))
    else:
        text = _format_tags(sentences, upos, xpos, args.format)
        if args.output:
            from .checkpoint import atomic_write_bytes

            atomic_write_bytes(args.output, text.encode("utf-8"))
        else:
            sys.stdout.write(text)
    if args.stats:
        n = sum(len(u) for u in upos)
        print(f"tagged {len(sentences):,} sentences, {n:,} tokens in {seconds:.2f} s ({n / max(seconds, 1e-9):,.0f} tokens/s)",
              file=sys.stderr)
    return 0


def _format_tags(sentences, upos, xpos, fmt: str) -> str:
    lines = []
    for i, s in enumerate(sentences):
        x = xpos[i] if xpos is not None else None
        if fmt == "tsv":
            for j, w in enumerate(s.forms):
                lines.append(f"{w}\t{upos[i][j]}" + (f"\t{x[j]}" if x is not None else ""))
            lines.append("")
        else:
            obj = {"words": list(s.forms), "upos": upos[i]}
            if x is not None:
                obj["xpos"] = x
            if s.sent_id:
                obj = {"sent_id": s.sent_id, **obj}
            lines.append(json.dumps(obj, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")


# -- attnlab demo ----------------------------------------------------------------------

DEMO_SENTENCE = ["I", "saw", "a", "saw"]
DEMO_EXPECTED = ["PRON", "VERB", "DET", "NOUN"]


def _add_demo(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="train taggers on the demo corpus and tell the two 'saw' in 'I saw a saw' apart",
        description="Trains the attention tagger (and, for comparison, the context-free 'none' tagger) on the small "
                    "corpus generated by attnlab, tags 'I saw a saw', and draws the attention weights.",
    )
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="where to write models and the heatmap (default ./demo-out)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from .tasks.tagging_demo import run_demo

    return run_demo(args)
