"""``--task tag`` (the default): the part of speech of every word (N -> N).

The model is ``attnlab.tasks.tagging.Tagger``: token features, a context encoder and a
UPOS head (and an auxiliary XPOS head, weighted by --xpos-weight). `attnlab eval` scores
UPOS accuracy, accuracy on unknown words (lowercased form not in the training data),
per-tag precision/recall/F1 and the most confused tag pairs, and XPOS accuracy; then the
word-level layers as the CoNLL 2018 shared task scores them (``attnlab.evaluate.score_word_layers``).
"""

from __future__ import annotations

from .base import new_model, token_model_configs

# more character filters and more word dropout than a classifier: lemmas, features and unknown
# words (27% of Turkish-IMST's test words) are read from characters
TAGGER_FEATURES = {"char_filters": 128, "word_dropout": 0.25}
MAX_EPOCHS = 200  # a planned run's cap (a tiny treebank would fit thousands of epochs in its budget)


class Tag:
    name = "tag"
    model_task = "tagging"
    model_tasks = ("tagging", "tagging-pretrained")  # with --pretrained DIR: attnlab.tasks.piece_tagging
    summary = "part of speech per token (N->N)"
    max_epochs = MAX_EPOCHS

    def default_epochs(self, train) -> None:
        """None: a tagging run plans its epochs from its time budget (``attnlab.train.plan_epochs``,
        at most ``MAX_EPOCHS``) rather than from the size of the treebank: the epochs that fit
        the budget on the machine that trains, so a small treebank trains as long as a large one
        may, and a large one still stops at the budget."""
        return None

    def add_train_arguments(self, group) -> None:
        from ..options import non_negative_float

        group.add_argument("--xpos-weight", type=non_negative_float, default=0.5,
                           help="weight of the XPOS loss (0 = no XPOS layer)")
        group.add_argument("--feats-weight", type=non_negative_float, default=0.5,
                           help="weight of the FEATS loss (0 = no FEATS layer)")
        group.add_argument("--lemma-weight", type=non_negative_float, default=0.5,
                           help="weight of the LEMMA loss (0 = no LEMMA layer; lemmas are predicted as edit scripts)")

    def add_eval_arguments(self, group) -> None:
        from ..precision import PRECISIONS

        group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                           help="number format of the matrix products: fp32, bf16 (about twice as fast on a CPU with AVX-512 BF16 "
                        "or AMX; the accuracy cost per treebank is in RESULTS.md) or auto (bf16 where the CPU has "
                        "it natively, else fp32; default fp32, so that scores are the same on every CPU)")

    def check(self, sentences) -> None:
        """Every word has a UPOS tag, one of Universal Dependencies' 17."""
        from ..data.conllu import check_tags

        check_tags(sentences)

    def build(self, args, train):
        from .tagging import LoadedTagger, Tagger, TaggerConfig, TaggerVocabs

        if getattr(args, "pretrained", None):
            from .piece_tagging import build_piece_tagger

            return build_piece_tagger(args.pretrained, train, xpos_weight=args.xpos_weight,
                                      label_smoothing=args.label_smoothing)
        encoder, features = token_model_configs(args, TAGGER_FEATURES)
        config = TaggerConfig(encoder=args.encoder, features=features, encoder_config=encoder,
                              xpos_weight=args.xpos_weight, label_smoothing=args.label_smoothing,
                              feats_weight=args.feats_weight, lemma_weight=args.lemma_weight)
        vocabs = TaggerVocabs.build(train)
        return LoadedTagger(new_model(lambda: Tagger(config, vocabs)), vocabs, config, {})

    def load(self, directory):
        from . import model_task
        from .piece_tagging import TASK, load_piece_tagger
        from .tagging import load_tagger

        return load_piece_tagger(directory) if model_task(directory) == TASK else load_tagger(directory)

    def training_task(self, loaded, args, train, dev):
        from .piece_tagging import LoadedPieceTagger, PieceTaggingTask
        from .tagging import TaggingTask

        if isinstance(loaded, LoadedPieceTagger):
            return PieceTaggingTask(loaded.model, loaded.vocabs, loaded.pieces, train, dev)
        return TaggingTask(loaded.model, loaded.vocabs, train, dev)

    def describe(self, loaded, training, train) -> tuple[str, str]:
        tokens = sum(len(s.forms) for s in train)
        config = loaded.model.config
        what = f"{config.encoder['model_type']} (pretrained)" if isinstance(config.encoder, dict) else config.encoder
        layers = getattr(loaded.model, "layers", ("upos",))
        missing = [name.upper() for name in ("xpos", "feats", "lemma") if name not in layers]
        note = f"; layers {', '.join(n.upper() for n in layers)}"
        if missing:
            note += f" (no {', '.join(missing)}: switched off or not in the training data)"
        return f"{what} tagger", f"{len(train):,} sentences, {tokens:,} tokens{note}"

    def evaluate(self, args, gold, source: str) -> dict:
        from . import model_task
        from .piece_tagging import TASK, evaluate_piece_tagger
        from .tagging import evaluate_tagger

        if model_task(args.model) == TASK:
            return evaluate_piece_tagger(args.model, gold, source=source)
        from ..precision import resolve

        return evaluate_tagger(args.model, gold, source=source, batch_tokens=args.batch_size,
                               precision=resolve(args.precision))

    def report_json(self, result: dict) -> dict:
        report = result["report"]
        obj = {"model": result["model"], "file": result["file"], "upos": report.to_json()}
        if "xpos" in result:
            obj["xpos_accuracy"] = result["xpos"].accuracy
        if "layers" in result:
            obj["layers"] = result["layers"].to_json()
        obj["tokens_per_s"] = report.tokens / max(result["seconds"], 1e-9)
        return obj

    def report_text(self, result: dict) -> str:
        lines = [f"{result['file']}  (model {result['model']})", result["report"].format()]
        if "xpos" in result:
            lines.append(f"\nXPOS accuracy    {100 * result['xpos'].accuracy:6.2f}%")
        if "layers" in result:
            lines += ["", "word-level layers (CoNLL 2018 definitions)", result["layers"].format()]
        return "\n".join(lines)
