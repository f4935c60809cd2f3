"""``--task seq2seq``: the lemma of each word as characters, given its form and UPOS (N -> M).

The model is ``attnlab.tasks.seq2seq.Lemmatizer``, an encoder-decoder Transformer over
characters. `attnlab eval` scores exact match (all, known and unknown forms) of the lookup
table for (form, UPOS) pairs seen in training plus the model for the others, of the model
alone (--no-lookup: only that), and of the most-frequent-lemma baseline (--no-baseline
skips it).
"""

from __future__ import annotations

import sys

from .base import FixedEpochs, new_model, sizes_from_args

DEFAULTS = {"hidden": 128, "layers": 2, "heads": 4, "d_ff": 512}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


class Seq2seq(FixedEpochs):
    name = "seq2seq"
    model_task = "seq2seq"
    summary = "the lemma of each word as characters, given form and UPOS (N->M)"

    def add_train_arguments(self, group) -> None:
        from ..options import beam, layers, width

        group.add_argument("--decoder-layers", type=layers, help="decoder layers (default: --layers)")
        group.add_argument("--max-chars", type=width, default=40, help="longest form read (longer: lemma = form; default 40)")
        group.add_argument("--beam", type=beam, default=1, help="beam size for the dev evaluation (default 1: greedy)")

    def add_eval_arguments(self, group) -> None:
        from ..options import beam

        group.add_argument("--beam", type=beam, default=1, help="beam size (default 1: greedy)")
        group.add_argument("--no-lookup", action="store_true",
                       help="the model alone, without the training lookup table for seen (form, UPOS) pairs")
        group.add_argument("--store-lookup", action="store_true",
                       help="models saved without a lookup table: build it from the recorded training file and add "
                            "it to the model directory (otherwise it is built for this run only)")

    def check(self, sentences) -> None:
        pass

    def build(self, args, train):
        from .seq2seq import LemmaVocab, Lemmatizer, LoadedLemmatizer, Seq2seqConfig, lemma_triples

        sizes = sizes_from_args(args, DEFAULTS)
        config = Seq2seqConfig(d_model=sizes["hidden"], heads=sizes["heads"], encoder_layers=sizes["layers"],
                               decoder_layers=args.decoder_layers or sizes["layers"], d_ff=sizes["d_ff"],
                               dropout=args.dropout, max_chars=args.max_chars, label_smoothing=args.label_smoothing)
        vocab = LemmaVocab.build(lemma_triples(train))
        return LoadedLemmatizer(new_model(lambda: Lemmatizer(config, len(vocab))), vocab, {}, None)

    def load(self, directory):
        from .seq2seq import load_lemmatizer

        return load_lemmatizer(directory)

    def training_task(self, loaded, args, train, dev):
        from .seq2seq import Seq2seqTask

        return Seq2seqTask(loaded.model, loaded.vocab, train, dev, beam=args.beam)

    def describe(self, loaded, training, train) -> tuple[str, str]:
        return "encoder-decoder lemmatizer", f"{len(training.src):,} distinct (form, UPOS, lemma) triples"

    def evaluate(self, args, gold, source: str) -> dict:
        from .seq2seq import evaluate_lemmatizer

        return evaluate_lemmatizer(args.model, gold, source=source, beam=args.beam, baseline=not args.no_baseline,
                                   lookup=not args.no_lookup, store_lookup=args.store_lookup, log=_stderr)

    def report_json(self, result: dict) -> dict:
        return result

    def report_text(self, result: dict) -> str:
        name = "model" + (f" (beam {result['beam']})" if result["beam"] > 1 else "")
        if result["lookup"]:
            t = result["table"]
            rows = [(f"lookup table for seen (form, UPOS) pairs ({t['tokens_answered']:,} tokens) + {name} for the "
                     "others", result["score"]), (f"{name} alone", result["model_only"])]
        else:
            rows = [(f"{name} alone (--no-lookup)", result["score"])]
        if "baseline" in result:
            rows.append((f"baseline: {result['baseline']['name']}", result["baseline"]["score"]))
        lines = [f"{result['file']}  (model {result['model']})"]
        for name, score in rows:
            lines.append(f"{100 * score['accuracy']:6.2f}% exact match  {100 * score['known_accuracy']:6.2f}% known  "
                         f"{100 * score['unknown_accuracy']:6.2f}% unknown forms  "
                         f"({score['tokens']:,} tokens, {score['unknown_tokens']:,} unknown)  {name}")
        if result["lookup"]:
            t = result["table"]
            lines.append(f"lookup table: {t['pairs']:,} (form, UPOS) pairs, {t['forms']:,} forms; {t['source']}")
        return "\n".join(lines)
