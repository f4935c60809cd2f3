"""What if one word were another, or unknown: the tag probabilities of every word and one head's
attention before and after the change, from the same forward pass run twice.

Shape letters: L layers, H heads, n tokens of one sentence, C values of a tag layer.

``probe(model, tokens, masked)`` runs the model once and returns every tag layer's full
distribution (n, C) and the attention weights (L, H, n, n). ``whatif_body`` runs it on the
sentence as given and on the changed one, and compares: both passes go through the same code,
so replacing a word by itself changes nothing, exactly.

Masking a word gives the model its *unknown-word input* at that position:

* a tagger (``attnlab.viz.model.Explainable``): the word embedding every word unseen in
  training gets (UNK, the one word dropout trains), an unknown shape, and a character CNN
  input of no characters (only the begin- and end-of-word markers): the model sees that a word
  stands there and nothing of it;
* a Hugging Face checkpoint: its mask piece (``[MASK]``), or its unknown piece without one.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

MASK_TAGGER = ("the unknown-word input: the word embedding of words unseen in training (UNK), an unknown "
               "shape and no characters (only the begin- and end-of-word markers), so the model sees that a "
               "word stands there and nothing of it")
UNKNOWN_FORM = "<unk>"  # how a masked word of a tagger is written in the changed sentence


def mask_input(model) -> tuple[str, str]:
    """(the token written for a masked word, what the model is given there) for ``model``."""
    pieces = getattr(model, "pieces", None)
    if pieces is None:
        return UNKNOWN_FORM, MASK_TAGGER
    for piece in ("[MASK]", "<mask>", "[UNK]", "<unk>"):
        if pieces.tokenizer.token_to_id(piece) is not None:
            kind = "mask" if "mask" in piece.lower() else "unknown"
            return piece, f"the checkpoint's {kind} piece {piece}"
    raise ValueError(f"{model.name} has no mask or unknown word piece to mask a word with")


@torch.inference_mode()
def probe(model, tokens: Sequence[str], masked: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """One forward pass on ``tokens`` (word ``masked`` given the unknown-word input, see the
    module docstring): ({layer: (n, C) probabilities}, weights (L, H, n, n) or None without
    attention). A checkpoint has no tag layers ({})."""
    tokens = list(tokens)
    if not tokens:
        raise ValueError("the sentence has no tokens")
    if getattr(model, "pieces", None) is not None:  # a checkpoint: the mask is a piece of its own
        if masked is not None:
            tokens[masked] = mask_input(model)[0]
        return {}, model.attention(tokens)[2].double().numpy()
    return _probe_tagger(model, tokens, masked)


def _probe_tagger(model, tokens: list[str], masked: int | None):
    from ..features import UNK
    from ..tasks.tagging import feats_allowed, masked_scores

    tagger = model.model
    with model._lock:
        batch = model.features.encode([tokens])
        if masked is not None:
            empty = model.features.vocabs.chars.encode(["<w>", "</w>"])
            row = torch.zeros(1, batch.chars.shape[1], dtype=torch.long)  # as wide as any word's row (>= 3)
            row[0, : len(empty)] = torch.tensor(empty)
            batch.chars = torch.cat([batch.chars, row])
            batch.words[0, masked] = UNK
            batch.shapes[0, masked] = UNK
            batch.char_index[0, masked] = batch.chars.shape[0] - 1
        allowed = feats_allowed(model.vocabs) if tagger.feats_head is not None else None
        scores = masked_scores(tagger(batch), allowed)
        probs = {name: torch.softmax(s[0], dim=-1).double().numpy() for name, s in scores.items()}
        weights = None
        if model.no_attention is None:
            per_layer = tagger.encoder.attention_weights(tagger.features(batch), batch.lengths)
            weights = torch.stack([w[0] for w in per_layer]).double().numpy()
    return probs, weights


def _labels(model, name: str, forms: Sequence[str]):
    """Per word, a function from a class id of layer ``name`` to what it reads as (a lemma for
    the LEMMA layer's edit scripts, else the tag itself)."""
    from ..features import PAD, UNK
    from ..tasks.lemma_edits import apply_edit

    itos = model.vocabs.layer(name).itos
    if name != "lemma":
        return [lambda k: itos[k]] * len(forms)
    return [lambda k, f=f: (k not in (PAD, UNK) and apply_edit(f, itos[k])) or itos[k] for f in forms]


def tag_changes(model, tokens: Sequence[str], changed: Sequence[str], before: dict[str, np.ndarray],
                after: dict[str, np.ndarray]) -> tuple[list, list]:
    """Per tag layer (``before`` and ``after``: (n, C) probabilities of ``tokens`` and of the
    ``changed`` sentence), the best value of every word before and after with its probability, the
    probability after of the value chosen before and its change; and every (word, layer) row
    sorted by the largest change of any value's probability, biggest first."""
    from .payload import rounded

    layers, rows = [], []
    for name, p in before.items():
        q = after[name]  # (n, C)
        label, label_after = _labels(model, name, tokens), _labels(model, name, changed)
        best_p, best_q = p.argmax(axis=1), q.argmax(axis=1)
        n = np.arange(len(tokens))
        change = q[n, best_p] - p[n, best_p]
        delta = q - p
        moved = np.abs(delta).argmax(axis=1)
        layer: dict[str, Any] = {"name": name.upper(),
                 "before": {"tags": [label[i](int(k)) for i, k in enumerate(best_p)], "probabilities": [rounded(x) for x in p[n, best_p]]},
                 "after": {"tags": [label_after[i](int(k)) for i, k in enumerate(best_q)], "probabilities": [rounded(x) for x in q[n, best_q]]},
                 "after_of_before": [rounded(x) for x in q[n, best_p]], "change": [rounded(x) for x in change],
                 "largest": [{"tag": label_after[i](int(k)), "change": rounded(delta[i, k])} for i, k in enumerate(moved)]}
        layers.append(layer)
        for i in range(len(tokens)):
            rows.append({"word": i, "layer": layer["name"], "before": layer["before"]["tags"][i],
                         "p_before": layer["before"]["probabilities"][i], "after": layer["after"]["tags"][i],
                         "p_after": layer["after"]["probabilities"][i], "after_of_before": layer["after_of_before"][i],
                         "change": layer["change"][i], "largest": layer["largest"][i]})
    rows.sort(key=lambda r: -abs(r["largest"]["change"]))  # stable: ties keep word and layer order
    return layers, rows


def whatif_body(model, tokens: list[str], position: int, replacement: str | None, layer: int, head: int) -> dict:
    """The answer of ``/api/whatif``: word ``position`` (from 0) of ``tokens`` replaced by
    ``replacement`` (None: masked), every tag layer's probabilities before and after
    (``tag_changes``), and head ``head`` of layer ``layer``'s attention before, after and after
    minus before ([n][n]; null without attention)."""
    from .payload import table

    if not 0 <= position < len(tokens):
        raise ValueError(f'"position" {position} is not a word of the sentence: it has {len(tokens)} (numbered from 0 to {len(tokens) - 1})')
    if model.no_attention is None:
        model.check_layer_head(layer, head)
    masked = replacement is None
    shown, what = mask_input(model) if replacement is None else (replacement, None)
    changed = [*tokens[:position], shown, *tokens[position + 1:]]
    before, w_before = probe(model, tokens)
    after, w_after = probe(model, tokens if masked else changed, position if masked else None)
    forms = tokens if masked else changed  # a masked word keeps its form for its lemma
    layers, rows = tag_changes(model, tokens, forms, before, after) if before else ([], [])
    body = {"tokens": tokens, "changed": changed, "position": position, "mask": masked, "mask_input": what,
            "layer": layer, "head": head, "annotations": layers, "changes": rows,
            "no_tags": getattr(model, "no_tags", None), "no_attention": model.no_attention,
            "before": None, "after": None, "difference": None}
    if w_before is not None and w_after is not None:
        a, b = np.round(w_before[layer, head], 6), np.round(w_after[layer, head], 6)
        body.update(before=table(a), after=table(b), difference=table(b - a))
    return body
