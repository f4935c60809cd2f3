"""`attnlab train`: train a model of any task on CoNLL-U data.

    attnlab train --treebank DIR --encoder attention --out models/ewt-attention
    attnlab train --task classify --treebank DIR --pooling attention --out models/ewt-genre
    attnlab train --task seq2seq --treebank DIR --out models/ewt-lemma
    attnlab train --resume --out models/ewt-attention
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    from ..encoders import ENCODERS
    from ..options import non_negative_float, positive_float, positive_int
    from ..tasks import DEFAULT_TASK, TASKS

    p = subparsers.add_parser(
        "train", help="train a part-of-speech tagger (or, with --task, a sentence classifier or lemmatizer) on CoNLL-U data",
        description="Train a UPOS tagger (with XPOS as an auxiliary task) on CoNLL-U files; --task classify or seq2seq "
                    "trains a sentence classifier or a lemmatizer instead. Data: --train/--dev, or --treebank DIR, or "
                    "the directory in $ATTNLAB_DATA. The best model on dev is kept in --out; checkpoints in "
                    "--out/checkpoints let --resume continue an interrupted run.",
    )
    data = p.add_argument_group("data")
    data.add_argument("--train", type=Path, help="training CoNLL-U file")
    data.add_argument("--dev", type=Path, help="development CoNLL-U file (early stopping)")
    data.add_argument("--treebank", type=Path, help="directory with *train.conllu and *dev.conllu (default: $ATTNLAB_DATA)")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--task", choices=tuple(TASKS), default=DEFAULT_TASK,
                   help="; ".join(f"{name}: {task.summary}" for name, task in TASKS.items())
                        + f" (default {DEFAULT_TASK}; --resume: the task of the model in --out)")
    p.add_argument("--encoder", choices=ENCODERS, default="attention", help="context encoder (default attention)")
    p.add_argument("--pretrained", type=Path, metavar="DIR",
                   help="--task tag on a BERT-family checkpoint (config.json, model.safetensors, tokenizer.json; "
                        "needs the 'hf' extra): its word pieces and encoder, each word by its first piece")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--max-minutes", type=positive_float,
                   help="stop this call after this many minutes (checkpointed; --resume continues the run); "
                        "see --budget-minutes for the whole run's time")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--segmenter-minutes", type=non_negative_float, default=None, metavar="MIN",
                   help="--task tag: first train a segmenter (sentences, tokens and multiword tokens, learned from "
                        "the raw text of the training data) for at most MIN minutes into --out/segmenter, so the "
                        "model takes raw text (default 4.5 for a new run, 0 with --resume; 0 = none: the model then "
                        "takes words or CoNLL-U only; with --resume, a MIN > 0 trains one when --out has none)")
    _add_training_options(p)
    _add_size_options(p)
    for name, task in TASKS.items():
        task.add_train_arguments(p.add_argument_group(f"--task {name}", task.summary))
    p.set_defaults(func=cmd_train)


def _add_training_options(p) -> None:
    from ..options import fraction, non_negative_float, non_negative_int, positive_float, positive_int, seed

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs (the learning rate schedule spans them; default: 24, and for --task tag as many as "
                        "fit --budget-minutes: the first two epochs, dev scores included, are timed and the run plans "
                        "the epochs that fit, at most 200; the plan is printed and kept in config.json, and "
                        "--epochs K --seed S repeats a planned run of K epochs exactly)")
    t.add_argument("--budget-minutes", type=positive_float, default=None, metavar="MIN",
                   help="the run's training time, over all --resume calls (the segmenter's is apart): it ends "
                        "for good once its steps have taken this long, and a run without --epochs plans its "
                        "epochs to fit it (default 15 for such a run; with --epochs, none unless given). A run "
                        "ends at whichever comes first: dev converged (--patience), the budget, the last epoch; "
                        "the summary line and config.json's \"run\" say which")
    t.add_argument("--seed", type=seed, default=1, help="random seed (default 1)")
    t.add_argument("--batch-tokens", type=positive_int, default=1000, help="tokens per batch (default 1000)")
    t.add_argument("--lr", type=positive_float, default=1.5e-3, help="peak learning rate (default 1.5e-3)")
    t.add_argument("--warmup", type=non_negative_int, default=200, help="warm-up steps (default 200)")
    t.add_argument("--schedule", choices=("linear", "cosine", "constant"), default="cosine",
                   help="after the warm-up: the learning rate's way down to 0 at the last step, or none (default cosine)")
    t.add_argument("--weight-decay", type=non_negative_float, default=0.01,
                   help="AdamW weight decay of the weight matrices (default 0.01)")
    t.add_argument("--patience", type=non_negative_int, default=None,
                   help="stop (converged) after this many epochs without dev improvement (0 = never; default: a "
                        "quarter of the epochs, given or planned, at least 6)")
    t.add_argument("--checkpoint-every", type=non_negative_int, default=200,
                   help="steps between checkpoints, besides the one at the end of each epoch (default 200; 0: only those)")
    t.add_argument("--label-smoothing", type=fraction, default=0.0, help="label smoothing of the losses (default 0)")
    t.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32",
                   help="the forward pass's products: fp32, bf16 (torch's autocast; weights, gradients and the "
                        "optimizer stay fp32; measured 0.89x fp32's speed for the tagger on a Zen 4 CPU with "
                        "AVX-512 BF16, RESULTS.md) or auto (bf16 where the CPU has it natively; default fp32)")


def _add_size_options(p) -> None:
    from ..config import MAX_WIDTH
    from ..options import fraction, int_range, layers, width

    s = p.add_argument_group("sizes (defaults depend on --encoder and --task; a model loads only within these ranges)")
    s.add_argument("--hidden", type=width, help="encoder width (bilstm: per direction)")
    s.add_argument("--layers", type=layers, help="encoder layers")
    s.add_argument("--heads", type=width, help="attention heads (they divide --hidden)")
    s.add_argument("--d-ff", type=width, help="attention feed-forward width")
    s.add_argument("--window", type=int_range(0, MAX_WIDTH), help="window encoder: +-k neighbours")
    s.add_argument("--kernel", type=width, help="cnn encoder: convolution width (odd)")
    s.add_argument("--positions", choices=("rotary", "sinusoidal", "learned", "none"), default="rotary", help="attention positions")
    s.add_argument("--dropout", type=fraction, default=0.2, help="encoder dropout (default 0.2)")
    s.add_argument("--word-dim", type=width, default=128, help="word embedding width (default 128)")
    s.add_argument("--char-filters", type=width, default=None,
                   help="char CNN filters per width (default 128 for --task tag, 64 for classify)")
    s.add_argument("--word-dropout", type=fraction, default=None,
                   help="share of training words whose word embedding is replaced by the unknown word's, so the "
                        "model learns to use characters (default 0.25 for --task tag, 0.1 for classify)")
    s.add_argument("--feature-dropout", type=fraction, default=0.25,
                   help="dropout on the token features (default 0.25)")


def cmd_train(args) -> int:
    from ..errors import UserError, require_extra
    from ..tasks.run import prepare_training
    from ..train import describe_result, is_main_process

    if args.pretrained:
        if args.task != "tag":
            raise UserError(f"--pretrained trains --task tag, not --task {args.task}")
        require_extra("hf", ["tokenizers"])

    run = prepare_training(args)
    main = is_main_process()  # under torchrun, rank 0 alone speaks
    if main:
        print(run.start_line(), file=sys.stderr)
        if run.segmenter_minutes:
            record = run.train_segmenter(log=lambda line: print(line, file=sys.stderr))
            print(f"segmenter: {record['steps']} steps in {record['minutes']:.1f} min (stopped by "
                  f"{'its time budget' if record['stopped_by'] == 'time' else 'its step count'})", file=sys.stderr)
    result = run.train(max_minutes=args.max_minutes, progress=not args.no_progress)
    if main:
        print(describe_result(result, args.out))
    return 130 if result.status == "interrupted" else 0
