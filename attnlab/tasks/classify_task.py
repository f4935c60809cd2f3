"""``--task classify``: the genre of each sentence, from its sent_id (N -> 1).

The model is ``attnlab.tasks.classification.Classifier``: the tagger's token features and
encoder, a pooling step (--pooling) and a linear layer. `attnlab eval` scores accuracy and
macro-F1 beside a bag-of-words logistic regression fitted on the training data recorded in
the model directory (--no-baseline skips it).
"""

from __future__ import annotations

from .base import FixedEpochs, new_model, token_model_configs


class Classify(FixedEpochs):
    name = "classify"
    model_task = "classification"
    summary = "the genre of each sentence from its sent_id (N->1)"

    def add_train_arguments(self, group) -> None:
        group.add_argument("--pooling", choices=("mean", "first", "attention"), default="attention",
                       help="how token vectors become one sentence vector (default attention: a learned query)")

    def add_eval_arguments(self, group) -> None:
        pass

    def check(self, sentences) -> None:
        self._labels(sentences)

    def _labels(self, sentences) -> list[str]:
        from .classification import genre

        return [genre(s) for s in sentences]

    def build(self, args, train):
        from .classification import Classifier, ClassifierConfig, ClassifierVocabs, LoadedClassifier

        encoder, features = token_model_configs(args)
        config = ClassifierConfig(encoder=args.encoder, pooling=args.pooling, features=features, encoder_config=encoder,
                                  label_smoothing=args.label_smoothing)
        vocabs = ClassifierVocabs.build(train, self._labels(train))
        return LoadedClassifier(new_model(lambda: Classifier(config, vocabs)), vocabs, config, {})

    def load(self, directory):
        from .classification import load_classifier

        return load_classifier(directory)

    def training_task(self, loaded, args, train, dev):
        from .classification import ClassificationTask

        return ClassificationTask(loaded.model, loaded.vocabs, train, self._labels(train), dev, self._labels(dev))

    def describe(self, loaded, training, train) -> tuple[str, str]:
        config = loaded.model.config
        classes = len(loaded.vocabs.labels) - 2  # PAD and UNK are not classes
        return (f"{config.encoder} sentence classifier ({config.pooling} pooling, {classes} classes)",
                f"{len(train):,} sentences")

    def evaluate(self, args, gold, source: str) -> dict:
        from .classification import evaluate_classifier

        return evaluate_classifier(args.model, gold, source=source, baseline=not args.no_baseline)

    def report_json(self, result: dict) -> dict:
        return result

    def report_text(self, result: dict) -> str:
        rows = [("model", result["score"])]
        if "baseline" in result:
            rows.append((f"baseline: {result['baseline']['name']}", result["baseline"]["score"]))
        lines = [f"{result['file']}  (model {result['model']})"]
        for name, score in rows:
            lines.append(f"{100 * score['accuracy']:6.2f}% accuracy  {100 * score['macro_f1']:6.2f}% macro-F1  "
                         f"({score['sentences']:,} sentences)  {name}")
        lines.append("\nper class (model):   precision  recall     F1  support")
        for c, v in result["score"]["per_class"].items():
            lines.append(f"  {c:<18} {100 * v['precision']:9.2f} {100 * v['recall']:7.2f} {100 * v['f1']:6.2f} "
                         f"{v['support']:8,}")
        return "\n".join(lines)
