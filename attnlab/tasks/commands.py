"""`attnlab train --task classify|seq2seq` and `attnlab eval` for those models.

    attnlab train --task classify --treebank DIR --pooling attention --out models/ewt-genre
    attnlab train --task seq2seq  --treebank DIR --out models/ewt-lemma
    attnlab eval --model models/ewt-genre DIR/en_ewt-ud-test.conllu [--json]
    attnlab eval --model models/ewt-lemma DIR/en_ewt-ud-test.conllu --beam 4 [--json] [--no-lookup]

The training options are those of the tagger's `attnlab train` (data, epochs, learning
rate, sizes); these commands add the task-specific ones. Both tasks go through the same
``attnlab.train.train`` loop as the tagger (checkpoints, --resume, progress, torchrun).
`attnlab eval` also fits the task's baseline on the training file recorded in the model
directory (a bag-of-words logistic regression; the most frequent lemma of the form) and
prints it next to the model. For a lemmatizer the main score is that of the lookup table
(stored in the model directory) for (form, UPOS) pairs seen in training and the model for
the others; the model alone is scored too (``--no-lookup``: only it).
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
    p.add_argument("--no-lookup", action="store_true",
                   help="seq2seq models: the model alone, without the training lookup table for seen (form, UPOS) pairs")
    p.add_argument("--store-lookup", action="store_true",
                   help="seq2seq models saved without a lookup table: build it from the recorded training file "
                        "and add it to the model directory (otherwise it is built for this run only)")


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

    from ..errors import UserError
    from ..data.conllu import read_conllu
    from ..tagger_cli import _new_run, _resume_data_paths, _resume_point, _run_training

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume:
        checkpoint, config = _resume_point(args)
        task_name = model_task(checkpoint)
        if args.task != "tag" and TASKS[args.task] != task_name:
            raise UserError(f"{checkpoint}: holds a {task_name} model, not --task {args.task}")
        loaded = _load(task_name, checkpoint)
        train_path, dev_path = _resume_data_paths(args, checkpoint, loaded.record)
        train_sents, dev_sents = read_conllu(train_path), read_conllu(dev_path)
        model = loaded.model
        model.train()
        resume_from = checkpoint
    else:
        task_name = TASKS[args.task]
        train_path, dev_path, config = _new_run(args)
        train_sents, dev_sents = read_conllu(train_path), read_conllu(dev_path)
        if not train_sents:
            raise UserError(f"{train_path}: no sentences")
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
    return _run_training(args, model, task, config, train_path, dev_path, resume_from)


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


def evaluate_lemmatizer(model_dir: Path, path: Path, *, beam: int = 1, baseline: bool = True, lookup: bool = True,
                        store_lookup: bool = False) -> dict:
    """Exact match overall / on known / on unknown forms of: the lookup table for seen
    (form, UPOS) pairs + the model for the others (the main ``score``, unless ``lookup`` is
    False), the model alone (``model_only``; the main score with ``lookup`` False) and the
    baseline. Known = the form occurs in training."""
    from ..data.conllu import read_conllu
    from .seq2seq import LemmaBaseline, LemmaTable, add_lookup_table, lemma_triples, predict_lemmas, score_lemmas

    loaded = _load("seq2seq", model_dir)
    table, table_source = loaded.table, "stored in the model directory"
    if table is None and store_lookup:
        table, table_source = add_lookup_table(model_dir), "built from the training file, now stored"
    elif table is None:
        train_path, _ = _recorded_data(loaded.record, model_dir, "the lookup table of a model saved without one")
        if not train_path.is_file():
            raise FileNotFoundError(f"{train_path}: training file of {model_dir} not found (the model directory has "
                                    "no lookup table, so it is built from this file)")
        table = LemmaTable.build(lemma_triples(read_conllu(train_path)))
        table_source = f"not stored; built from {train_path} for this run (--store-lookup keeps it)"
        _say(f"{model_dir}: no lookup table stored (saved before tables were); built it from {train_path}")
    triples = lemma_triples(read_conllu(path))
    pairs = [(f, u) for f, u, _ in triples]
    gold = [l for _, _, l in triples]
    unknown = [f not in table for f, _ in pairs]
    result = {"model": str(model_dir), "file": str(path), "task": "seq2seq", "beam": beam, "lookup": lookup}
    if lookup:
        hybrid = predict_lemmas(loaded.model, loaded.vocab, pairs, beam=beam, table=table)
        result["score"] = score_lemmas(gold, hybrid, unknown)
        result["table"] = {"source": table_source, "pairs": len(table.pairs), "forms": len(table.forms),
                           "tokens_answered": sum(table.lookup(f, u) is not None for f, u in pairs)}
    alone = predict_lemmas(loaded.model, loaded.vocab, pairs, beam=beam)
    result["model_only" if lookup else "score"] = score_lemmas(gold, alone, unknown)
    if baseline:
        result["baseline"] = {"name": "most frequent lemma of the form in training, else the form",
                              "score": score_lemmas(gold, LemmaBaseline(table=table).predict(pairs), unknown)}
    return result


def _recorded_data(record: dict, model_dir: Path, needed_for: str = "the baseline; use --no-baseline") -> tuple[Path, Path]:
    data = record.get("data") or {}
    if not (data.get("train") and data.get("dev")):
        raise ValueError(f"{Path(model_dir) / 'config.json'}: no training data recorded (needed for {needed_for})")
    return Path(data["train"]), Path(data["dev"])


def cmd_eval(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    task = model_task(args.model)
    if task == "classification":
        result = evaluate_classifier(args.model, args.file, baseline=not args.no_baseline)
    else:
        result = evaluate_lemmatizer(args.model, args.file, beam=args.beam, baseline=not args.no_baseline,
                                     lookup=not args.no_lookup, store_lookup=args.store_lookup)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['file']}  (model {result['model']})")
    if task == "seq2seq":
        name = "model" + (f" (beam {args.beam})" if args.beam > 1 else "")
        if result["lookup"]:
            t = result["table"]
            rows = [(f"lookup table for seen (form, UPOS) pairs ({t['tokens_answered']:,} tokens) + {name} for the others",
                     result["score"]), (f"{name} alone", result["model_only"])]
        else:
            rows = [(f"{name} alone (--no-lookup)", result["score"])]
    else:
        rows = [("model", result["score"])]
    if "baseline" in result:
        rows.append((f"baseline: {result['baseline']['name']}", result["baseline"]["score"]))
    for name, score in rows:
        if task == "classification":
            print(f"{100 * score['accuracy']:6.2f}% accuracy  {100 * score['macro_f1']:6.2f}% macro-F1  "
                  f"({score['sentences']:,} sentences)  {name}")
        else:
            print(f"{100 * score['accuracy']:6.2f}% exact match  {100 * score['known_accuracy']:6.2f}% known  "
                  f"{100 * score['unknown_accuracy']:6.2f}% unknown forms  "
                  f"({score['tokens']:,} tokens, {score['unknown_tokens']:,} unknown)  {name}")
    if task == "seq2seq" and result["lookup"]:
        print(f"lookup table: {result['table']['pairs']:,} (form, UPOS) pairs, {result['table']['forms']:,} forms; "
              f"{result['table']['source']}")
    if task == "classification":
        print("\nper class (model):   precision  recall     F1  support")
        for c, v in result["score"]["per_class"].items():
            print(f"  {c:<18} {100 * v['precision']:9.2f} {100 * v['recall']:7.2f} {100 * v['f1']:6.2f} {v['support']:8,}")
    return 0
