"""`attnlab train --task classify|seq2seq` and `attnlab eval` for those models.

    attnlab train --task classify --treebank DIR --pooling attention --out models/ewt-genre
    attnlab train --task seq2seq  --treebank DIR --out models/ewt-lemma
    attnlab eval --model models/ewt-genre DIR/en_ewt-ud-test.conllu [--json]
    attnlab eval --model models/ewt-lemma DIR/en_ewt-ud-test.conllu --beam 4 [--json]

The training options are those of the tagger's `attnlab train` (data, epochs, learning
rate, sizes); these commands add the task-specific ones. Both tasks go through the same
``attnlab.train.train`` loop as the tagger (checkpoints, --resume, progress, torchrun).
`attnlab eval` also fits the task's baseline on the training file recorded in the model
directory (a bag-of-words logistic regression; the most frequent lemma of the form) and
prints it next to the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TASKS = {"tag": "tagging", "classify": "classification", "seq2seq": "seq2seq"}
SEQ2SEQ_DEFAULTS = {"hidden": 128, "layers": 2, "heads": 4, "d_ff": 512}


def add_train_arguments(p) -> None:
    """The options `attnlab train` gains for the classification and seq2seq tasks."""
    g = p.add_argument_group("task (classify: genre of a sentence; seq2seq: lemma of a word)")
    g.add_argument("--task", choices=tuple(TASKS), default="tag",
                   help="tag: part of speech per token (N->N); classify: the genre of each sentence from its "
                        "sent_id (N->1); seq2seq: the lemma of each word as characters, given form and UPOS (N->M)")
    g.add_argument("--pooling", choices=("mean", "first", "attention"), default="attention",
                   help="classify: how token vectors become one sentence vector (default attention: a learned query)")
    g.add_argument("--decoder-layers", type=int, help="seq2seq: decoder layers (default: --layers)")
    g.add_argument("--max-chars", type=int, default=40, help="seq2seq: longest form read (longer: lemma = form)")
    g.add_argument("--beam", type=int, default=1, help="seq2seq: beam size for the dev evaluation (default 1: greedy)")


def add_eval_arguments(p) -> None:
    p.add_argument("--beam", type=int, default=1, help="seq2seq models: beam size (default 1: greedy)")
    p.add_argument("--no-baseline", action="store_true", help="classify/seq2seq models: skip the baseline")


def model_task(directory: Path) -> str | None:
    """The ``task`` a model directory's config.json names (None when unreadable)."""
    try:
        return json.loads((Path(directory) / "config.json").read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        return None


def handles_train(args) -> bool:
    """Whether `attnlab train` goes here: --task classify|seq2seq, or --resume of such a model."""
    if getattr(args, "task", "tag") != "tag":
        return True
    if args.resume:
        from ..train import latest_checkpoint

        try:
            checkpoint = latest_checkpoint(args.out)
        except ValueError:
            return False
        return model_task(checkpoint) in ("classification", "seq2seq")
    return False


def handles_eval(args) -> bool:
    return model_task(args.model) in ("classification", "seq2seq")


def _say(msg: str) -> None:
    from ..train import is_main_process

    if is_main_process():
        print(msg, file=sys.stderr)


def cmd_train(args) -> int:
    import torch

    from ..cli import UserError
    from ..data.conllu import read_conllu
    from ..tagger_cli import _data_paths
    from ..train import TrainConfig, describe_result, is_main_process, latest_checkpoint, read_checkpoint_state, train

    if args.threads:
        torch.set_num_threads(args.threads)
    out: Path = args.out
    if args.resume:
        checkpoint = latest_checkpoint(out)
        record = read_checkpoint_state(checkpoint)
        task_name = model_task(checkpoint)
        if args.task != "tag" and TASKS[args.task] != task_name:
            raise UserError(f"{checkpoint}: holds a {task_name} model, not --task {args.task}")
        config = TrainConfig.from_json(record["train_config"])
        loaded = _load(task_name, checkpoint)
        data = loaded.record.get("data") or {}
        if args.train or args.dev or args.treebank:
            train_path, dev_path = _data_paths(args)
        elif data.get("train") and data.get("dev"):
            train_path, dev_path = Path(data["train"]), Path(data["dev"])
        else:
            raise UserError(f"{checkpoint}: no data paths recorded; give --train/--dev or --treebank")
        train_sents, dev_sents = read_conllu(train_path), read_conllu(dev_path)
        model = loaded.model
        model.train()
        resume_from = checkpoint
    else:
        if (out / "config.json").exists() or (out / "checkpoints").exists():
            raise UserError(f"{out} already holds a model; use --resume to continue it or choose another --out")
        task_name = TASKS[args.task]
        train_path, dev_path = _data_paths(args)
        train_sents, dev_sents = read_conllu(train_path), read_conllu(dev_path)
        if not train_sents:
            raise UserError(f"{train_path}: no sentences")
        config = TrainConfig(
            epochs=args.epochs, batch_tokens=args.batch_tokens, lr=args.lr, weight_decay=args.weight_decay,
            warmup=args.warmup, schedule=args.schedule, patience=args.patience, seed=args.seed,
            checkpoint_every=args.checkpoint_every,
        )
        torch.manual_seed(args.seed)
        loaded = None
        model = None
        resume_from = None

    if task_name == "classification":
        from .classification import (
            ClassificationTask, Classifier, ClassifierConfig, ClassifierVocabs, genre,
        )

        train_labels, dev_labels = [genre(s) for s in train_sents], [genre(s) for s in dev_sents]
        if loaded is None:
            from ..tagger_cli import _tagger_config

            base = _tagger_config(args)
            vocabs = ClassifierVocabs.build(train_sents, train_labels)
            model = Classifier(ClassifierConfig(encoder=base.encoder, pooling=args.pooling, features=base.features,
                                                encoder_config=base.encoder_config,
                                                label_smoothing=args.label_smoothing), vocabs)
        else:
            vocabs = loaded.vocabs
        task = ClassificationTask(model, vocabs, train_sents, train_labels, dev_sents, dev_labels)
        what = f"{model.config.encoder} sentence classifier ({model.config.pooling} pooling, {len(vocabs.labels) - 2} classes)"
        n_examples = f"{len(train_sents):,} sentences"
    else:
        from .seq2seq import LemmaVocab, Lemmatizer, Seq2seqConfig, Seq2seqTask, lemma_triples

        if loaded is None:
            sizes = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in SEQ2SEQ_DEFAULTS.items()}
            s2s = Seq2seqConfig(d_model=sizes["hidden"], heads=sizes["heads"], encoder_layers=sizes["layers"],
                                decoder_layers=args.decoder_layers or sizes["layers"], d_ff=sizes["d_ff"],
                                dropout=args.dropout, max_chars=args.max_chars, label_smoothing=args.label_smoothing)
            vocab = LemmaVocab.build(lemma_triples(train_sents))
            model = Lemmatizer(s2s, len(vocab))
        else:
            vocab = loaded.vocab
        task = Seq2seqTask(model, vocab, train_sents, dev_sents, beam=args.beam)
        what = "encoder-decoder lemmatizer"
        n_examples = f"{len(task.src):,} distinct (form, UPOS, lemma) triples"

    n_params = sum(p.numel() for p in model.parameters())
    _say(f"training {what} ({n_params / 1e6:.2f}M parameters) on {train_path} ({n_examples}), dev {dev_path}, "
         f"{torch.get_num_threads()} threads")
    result = train(model, task, config, out, resume_from=resume_from, max_minutes=args.max_minutes,
                   progress=not args.no_progress,
                   extra={"data": {"train": str(Path(train_path).resolve()), "dev": str(Path(dev_path).resolve())}})
    if is_main_process():
        print(describe_result(result, out))
    return 130 if result.status == "interrupted" else 0


def _load(task_name: str, directory: Path):
    if task_name == "classification":
        from .classification import load_classifier

        return load_classifier(directory)
    from .seq2seq import load_lemmatizer

    return load_lemmatizer(directory)


# -- attnlab eval ------------------------------------------------------------------------

def evaluate_classifier(model_dir: Path, path: Path, *, baseline: bool = True) -> dict:
    from ..data.conllu import read_conllu
    from .classification import BowBaseline, genre, predict_labels, score_labels

    loaded = _load("classification", model_dir)
    sentences = read_conllu(path)
    gold = [genre(s) for s in sentences]
    forms = [s.forms for s in sentences]
    result = {"model": str(model_dir), "file": str(path), "task": "classification",
              "score": score_labels(gold, predict_labels(loaded.model, loaded.encoder(), loaded.vocabs, forms))}
    if baseline:
        train_path, dev_path = _recorded_data(loaded.record, model_dir)
        tr, dv = read_conllu(train_path), read_conllu(dev_path)
        bow = BowBaseline().fit([s.forms for s in tr], [genre(s) for s in tr],
                                dev=([s.forms for s in dv], [genre(s) for s in dv]))
        result["baseline"] = {"name": f"bag-of-words logistic regression (l2 {bow.l2:g}, chosen on dev)",
                              "score": score_labels(gold, bow.predict(forms))}
    return result


def evaluate_lemmatizer(model_dir: Path, path: Path, *, beam: int = 1, baseline: bool = True) -> dict:
    from ..data.conllu import read_conllu
    from .seq2seq import LemmaBaseline, lemma_triples, predict_lemmas, score_lemmas

    loaded = _load("seq2seq", model_dir)
    triples = lemma_triples(read_conllu(path))
    pairs = [(f, u) for f, u, _ in triples]
    gold = [l for _, _, l in triples]
    train_path, _ = _recorded_data(loaded.record, model_dir)
    seen = LemmaBaseline(lemma_triples(read_conllu(train_path)))
    unknown = [f not in seen for f, _ in pairs]
    result = {"model": str(model_dir), "file": str(path), "task": "seq2seq", "beam": beam,
              "score": score_lemmas(gold, predict_lemmas(loaded.model, loaded.vocab, pairs, beam=beam), unknown)}
    if baseline:
        result["baseline"] = {"name": "most frequent lemma of the form in training, else the form",
                              "score": score_lemmas(gold, seen.predict(pairs), unknown)}
    return result


def _recorded_data(record: dict, model_dir: Path) -> tuple[Path, Path]:
    data = record.get("data") or {}
    if not (data.get("train") and data.get("dev")):
        raise ValueError(f"{Path(model_dir) / 'config.json'}: no training data recorded (needed for the baseline; "
                         "use --no-baseline)")
    return Path(data["train"]), Path(data["dev"])


def cmd_eval(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    task = model_task(args.model)
    if task == "classification":
        result = evaluate_classifier(args.model, args.file, baseline=not args.no_baseline)
    else:
        result = evaluate_lemmatizer(args.model, args.file, beam=args.beam, baseline=not args.no_baseline)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['file']}  (model {result['model']})")
    rows = [("model" + (f" (beam {args.beam})" if task == "seq2seq" and args.beam > 1 else ""), result["score"])]
    if "baseline" in result:
        rows.append((f"baseline: {result['baseline']['name']}", result["baseline"]["score"]))
    for name, score in rows:
        if task == "classification":
            print(f"{100 * score['accuracy']:6.2f}% accuracy  {100 * score['macro_f1']:6.2f}% macro-F1  "
                  f"({score['sentences']:,} sentences)  {name}")
        else:
            print(f"{100 * score['accuracy']:6.2f}% exact match  {100 * score['unknown_accuracy']:6.2f}% on unknown forms  "
                  f"({score['tokens']:,} tokens, {score['unknown_tokens']:,} unknown)  {name}")
    if task == "classification":
        print("\nper class (model):   precision  recall     F1  support")
        for c, v in result["score"]["per_class"].items():
            print(f"  {c:<18} {100 * v['precision']:9.2f} {100 * v['recall']:7.2f} {100 * v['f1']:6.2f} {v['support']:8,}")
    return 0
