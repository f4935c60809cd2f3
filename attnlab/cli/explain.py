"""`attnlab explain`: what a trained tagger, or a Hugging Face checkpoint, attends to, as
heatmaps or step by step."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from ..options import positive_int

DEFAULT_OUT = Path("attn.png")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="draw a tagger's attention on a sentence (heatmaps) or print one head step by step",
        description=(
            "Tag a sentence with a trained attention tagger and draw its attention weights alpha'_(i,j): "
            "a grid of heatmaps, layers down and heads across, tokens (with their predicted tags) on both "
            "axes. --steps prints, for one head, q^i, k^i, v^i, the scaled scores alpha_(i,j) and the "
            "weights alpha'_(i,j) of every token, in the notation of `attnlab steps`. --model may also be a "
            "Hugging Face checkpoint directory (BERT, RoBERTa, DistilBERT, XLM-RoBERTa, ELECTRA: config.json, "
            "model.safetensors, tokenizer.json): its word pieces are on the axes, without tags. --why N prints why "
            "the N-th word got its tag: integrated gradients of the tag's logit over every word's input vector "
            "(with the completeness check) beside attention rollout."
        ),
    )
    p.add_argument("--model", required=True, help="a shipped model's name (e.g. en), a model directory (from `attnlab train` or `attnlab demo`), or a Hugging Face checkpoint directory")
    p.add_argument("sentence", nargs="+", help='the sentence, e.g. "I saw a saw"')
    p.add_argument("--out", type=Path, default=None,
                   help=f"image to write (.png, .svg or .pdf; default {DEFAULT_OUT}, or none with --steps)")
    p.add_argument("--layer", type=positive_int, default=None, help="only this layer (from 1; default all)")
    p.add_argument("--head", type=positive_int, default=None, help="only this head (from 1; default all)")
    p.add_argument("--steps", action="store_true",
                   help="print q, k, v, alpha and alpha' of one head (--layer and --head, default 1 and 1)")
    p.add_argument("--why", type=positive_int, default=None, metavar="N",
                   help="print why word N (from 1) got its tag: each word's integrated-gradients attribution, its share "
                        "and the attention rollout weight, with the completeness gap")
    p.add_argument("--layer-name", default="UPOS",
                   help="the tag layer --why explains: UPOS, XPOS, FEATS or LEMMA, as the model predicts them (default UPOS)")
    p.add_argument("--ig-steps", type=positive_int, default=None,
                   help="gradient evaluations along the path for --why (default 256)")
    p.add_argument("--ig-rule", choices=("adaptive", "gauss-legendre", "riemann"), default="adaptive",
                   help="how --why integrates along the path: Gauss-Legendre panels split where completeness fails "
                        "(adaptive, default), fixed Gauss-Legendre points, or the midpoint Riemann sum")
    p.add_argument("--tokenize", choices=("simple", "whitespace"), default="simple",
                   help="how to split the sentence into words: simple (the model's segmenter, as `attnlab tag` reads raw "
                        "text; a model without one: a rule-based tokenizer) or whitespace (at spaces only)")
    p.set_defaults(func=run)


def _model_directory(model: str):
    """The directory --model names, for the output check (None when it names none: the loader says so)."""
    from ..api import resolve_model

    try:
        return resolve_model(model)
    except (OSError, ValueError):
        return None


def run(args) -> int:
    from ..viz.figure import require_viz
    from ..output import check_output
    from ..data.conllu import check_encodable, check_sentence_length
    from ..viz.heatmap import image_format, label_pixels, plot_attention_grid
    from ..viz.model import load_explainable
    from ..viz.steps import render_steps

    out = args.out if args.out is not None else (None if args.steps or args.why else DEFAULT_OUT)
    if out is not None:
        require_viz()  # the image needs matplotlib: say so before the model is loaded
        fmt = image_format(out)  # a bad --out fails before the model is loaded
        check_output(out, inputs=[_model_directory(args.model)])
    text = " ".join(args.sentence)
    if not text.strip():
        raise ValueError("the sentence has no words")
    check_encodable(text, "the sentence")  # bytes that are not UTF-8 on the command line
    model = load_explainable(args.model)
    if args.why is None or out is not None:
        model.require_attention()
    tokens = model.split(text, args.tokenize)  # words, or a checkpoint's word pieces
    if not tokens:
        raise ValueError("the sentence has no words")
    check_sentence_length(len(tokens), "the sentence")
    if args.why is not None:
        from ..viz.why import DEFAULT_STEPS, Why, check_word_layer, explain_word, render_why

        check_word_layer(model, tokens, args.why - 1, args.layer_name)
        why = cast(Why, explain_word(model, tokens, args.why - 1, args.layer_name, steps=args.ig_steps or DEFAULT_STEPS,
                                     rule=args.ig_rule))
        print(render_why(why))
        if out is None:
            return 0
        print()
    layer = args.layer - 1 if args.layer is not None else None
    head = args.head - 1 if args.head is not None else None
    model.check_layer_head(layer, head)

    tags, probs, weights = model.attention(tokens)
    if model.no_tags:
        print(" ".join(tokens))
        print(f"  ({model.no_tags})")
    else:
        print(" ".join(f"{w}/{t}" for w, t in zip(tokens, tags)))
        print("  probabilities: " + " ".join(f"{p:.2f}" for p in probs))
    shown_tags = tags or None
    if args.steps:
        steps = model.steps(tokens, layer or 0, head or 0)
        normalize, rotary = model.normalize, model.attention_encoder().rotary
        assert normalize is not None  # steps() needs attention, which has a normalizer
        print()
        print(render_steps(tokens, steps, layer=layer or 0, head=head or 0, normalize=normalize, tags=shown_tags,
                           rotary=rotary is not None, additions=model.additions(layer or 0, head or 0)))
    if out is not None:
        plot_attention_grid(tokens, weights, tags=shown_tags, layer=layer, head=head, path=out,
                            title=f'{model.name}: attention on "{" ".join(tokens)}"')
        grid = f"{1 if layer is not None else model.layers} x {1 if head is not None else model.heads}"
        print(f"wrote {out} (layers x heads = {grid}; rows: query i, columns: key j)")
        shown = label_pixels(len(tokens), 1 if layer is not None else model.layers, 1 if head is not None else model.heads)
        if fmt == "png" and shown < 10:
            print(f"  the word labels are {shown:.0f} px high in it; --layer and --head draw one heatmap large enough to read")
    return 0
