"""Compact model directories: a copy of a trained model with float16 or int8 weights, and its cost.

A trained model directory holds float32 weights (4 bytes per parameter), most of them in
the word-embedding table. ``export_model`` writes a copy that keeps only what using
the model needs (weights, vocabularies, the model's JSON files and its training record; no
optimizer, no checkpoints) with its weights stored in float16 or int8 with per-row
scales (``attnlab.weight_storage``). Loading it gives float32 weights again.
``compare_storages`` measures what that costs a tagger: size on disk, accuracy per layer,
and the share of words whose prediction changes.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path

from .checkpoint import CONFIG, VOCAB, WEIGHTS, file_checksums, load_model_dir, read_json, read_model_json, save_model_dir
from .errors import UserError
from .output import check_new_directory
from .weight_storage import COMPACT, STORAGE_KEY, encode_weights, storage_of

SEGMENTER = "segmenter"  # a tagger's segmenter (``attnlab.tasks.segmenter.DIRECTORY``) is exported with it


# -- exporting ---------------------------------------------------------------------------

def export_model(source: str | os.PathLike, out: str | os.PathLike, storage: str) -> Path:
    """Write a compact copy of the model directory ``source`` into the new directory ``out``:
    weights stored as ``storage`` ("float16" or "int8"), vocabularies, the model's further JSON
    files and its config.json record (with ``weight_storage`` and where it came from), and a
    tagger's segmenter (``segmenter/``, in float16 when ``storage`` is int8). Training state
    (optimizer, checkpoints/) is left behind.

    ``out`` must be new or an empty directory. The copy is written into a temporary directory
    beside it (``.NAME.XXXXXXXX.export``), loaded there as its task loads it (``validate_model``),
    and only then renamed to ``out``: a copy that does not load is never left behind."""
    if storage not in COMPACT:
        raise UserError(f"weight storage {storage!r}: expected one of {', '.join(COMPACT)}")
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise UserError(f"{source}: no such model directory")
    check_new_directory(out, inputs=[source])
    target = Path(os.path.realpath(out))  # a symbolic link to an empty directory stays one
    staging = _staging_directory(target, out)
    try:
        _write_copy(source, staging, storage)
        segmenter = source / SEGMENTER
        if (segmenter / CONFIG).is_file():  # a tagger's segmenter: small, so never below float16
            _write_copy(segmenter, staging / SEGMENTER, "float16" if storage == "int8" else storage)
        _validate_copy(staging, source, out)
        _move_into_place(staging, target, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _write_copy(source: Path, directory: Path, storage: str) -> None:
    """The model files of ``source`` into ``directory``, weights stored as ``storage``."""
    files = load_model_dir(source)  # every checksum checked (plain file names only), weights as float32
    sums = file_checksums(files.config, source / CONFIG)
    extra = {name: obj for name in sums if name not in (WEIGHTS, VOCAB)  # listed, so never None
             if (obj := read_model_json(source, files.config, name, "model file")) is not None}
    record = {k: v for k, v in files.config.items() if k not in ("format", "files")}
    record[STORAGE_KEY] = storage
    record["exported_from"] = {STORAGE_KEY: storage_of(files.config), "weights_sha256": sums[WEIGHTS]}
    save_model_dir(directory, encode_weights(files.state, storage), record, files.vocab, extra)


def validate_model(directory: str | os.PathLike) -> None:
    """Load the model in ``directory`` as its task does (``attnlab tag``, ``eval``, the API), or as
    a model directory when its task is none attnlab knows: the loader's one-line error if it fails."""
    from .tasks import task_for_model

    directory = Path(directory)
    task = task_for_model(directory)
    if task is None:
        load_model_dir(directory)
    else:
        task.load(Path(directory))
    if (Path(directory) / SEGMENTER / CONFIG).is_file():
        from .tasks.segmenter import load_segmenter

        load_segmenter(Path(directory) / SEGMENTER)


def _validate_copy(staging: Path, source: Path, out: Path) -> None:
    """``validate_model(staging)``; its error names ``source`` (whose config.json the copy
    carries) and says that nothing was written to ``out``."""
    try:
        validate_model(staging)
    except Exception as exc:  # whatever the loader raises: the copy does not load
        reason = str(exc).replace(str(staging), str(source)) or type(exc).__name__
        raise UserError(f"{out}: not written: the copy would not load ({reason})") from None


def _staging_directory(target: Path, out: Path) -> Path:
    """A new, empty ``.NAME.XXXXXXXX.export`` beside ``target`` (made like any new directory);
    errors name ``out``, the directory the user asked for."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            staging = target.parent / f".{target.name}.{secrets.token_hex(4)}.export"
            try:
                staging.mkdir()
                return staging
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "cannot create a temporary directory beside it")
    except OSError as exc:
        raise UserError(f"{out}: cannot write ({exc.strerror or exc})") from None


def _move_into_place(staging: Path, target: Path, out: Path) -> None:
    """Rename the finished directory ``staging`` to ``target`` (new, or an empty directory)."""
    try:
        os.replace(staging, target)
    except OSError as exc:
        raise UserError(f"{out}: cannot write ({exc.strerror or exc}); choose a new directory") from None


def model_bytes(directory: str | os.PathLike) -> dict[str, int]:
    """Bytes on disk of a model directory: its weight file and all its files (config.json and
    the files it lists; not checkpoints/)."""
    directory = Path(directory)
    sums = file_checksums(load_config(directory), directory / CONFIG)
    names = [CONFIG, *sums]
    return {"weights": (directory / WEIGHTS).stat().st_size, "total": sum((directory / n).stat().st_size for n in names)}


def load_config(directory: Path) -> dict:
    """The config.json of a model directory, read with the usual checks."""
    return read_json(directory / CONFIG, "model config")


# -- the cost of compact storage ---------------------------------------------------------

def compare_storages(model_dir: str | os.PathLike, gold, *, batch_tokens: int = 8192) -> list[dict]:
    """Tag the gold sentences ``gold`` with the tagger in ``model_dir`` as it is stored and with
    its float16 and int8 copies (written to a temporary directory): one row per storage with
    ``storage``, ``bytes`` (``model_bytes``), ``scores`` (the CoNLL 2018 word-level report as
    JSON) and ``differ`` (per predicted layer, the share of words whose prediction differs
    from the stored model's; ``"any"``: in at least one layer)."""
    import tempfile

    model_dir = Path(model_dir)
    reference, first = _tag_gold(model_dir, gold, batch_tokens)  # checks the model directory
    stored = storage_of(load_config(model_dir))
    rows = [_storage_row(stored, model_dir, first, reference)]
    with tempfile.TemporaryDirectory(prefix="attnlab-compact-") as tmp:
        for storage in COMPACT:
            out = Path(tmp) / storage
            export_model(model_dir, out, storage)
            predicted, report = _tag_gold(out, gold, batch_tokens)
            rows.append(_storage_row(storage, out, report, reference, predicted))
    return rows


def _tag_gold(directory: Path, gold, batch_tokens: int):
    """(predictions by layer, word-level report as JSON) of the tagger in ``directory`` on ``gold``."""
    from .evaluate import score_word_layers
    from .tasks.tagging import load_tagger, predict_tags

    loaded = load_tagger(directory)
    tags = predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, [s.forms for s in gold],
                        batch_tokens=batch_tokens).tags
    return tags, score_word_layers(gold, tags, loaded.vocabs.features.is_known).to_json()


def _storage_row(storage: str, directory: Path, scores: dict, reference: dict, predicted: dict | None = None) -> dict:
    predicted = reference if predicted is None else predicted
    return {"storage": storage, "bytes": model_bytes(directory), "scores": scores,
            "differ": differing_share(reference, predicted)}


def differing_share(reference: dict[str, list[list[str]]], predicted: dict[str, list[list[str]]]) -> dict[str, float]:
    """Per layer of ``reference`` (one value list per sentence), the share of words whose value in
    ``predicted`` differs; ``"any"``: the share of words that differ in at least one layer."""
    flat = {name: [v for row in rows for v in row] for name, rows in reference.items()}
    other = {name: [v for row in predicted[name] for v in row] for name in flat}
    words = len(next(iter(flat.values()), []))
    if not words:
        return {}
    differ = {name: [a != b for a, b in zip(flat[name], other[name])] for name in flat}
    share = {name: sum(d) / words for name, d in differ.items()}
    share["any"] = sum(any(d[i] for d in differ.values()) for i in range(words)) / words
    return share


def format_comparison(rows: list[dict]) -> str:
    """``compare_storages``'s rows as a table: size, accuracy per layer, differing predictions."""
    from .evaluate import WORD_LAYERS

    layers = [name for name in WORD_LAYERS if any(r["scores"].get(name, {}).get("accuracy") is not None for r in rows)]
    head = f"{'weights':<8} {'file MB':>8} {'dir MB':>7} " + " ".join(f"{n:>7}" for n in layers) + "  differ (any; per layer)"
    lines = [head]
    for r in rows:
        acc = " ".join(_pct(r["scores"][n]["accuracy"]) for n in layers)
        per = ", ".join(f"{k} {100 * v:.2f}%" for k, v in r["differ"].items() if k != "any")
        lines.append(f"{r['storage']:<8} {r['bytes']['weights'] / 1e6:8.2f} {r['bytes']['total'] / 1e6:7.2f} {acc}  "
                     f"{100 * r['differ'].get('any', 0.0):.2f}% ({per})")
    words = rows[0]["scores"]["words"]
    lines.append(f"{words} words; accuracy by the CoNLL 2018 definitions; differ: words whose prediction "
                 f"differs from the {rows[0]['storage']} model's")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return f"{100 * x:6.2f}%" if x is not None else "      –"
