"""The explorer in a notebook: ``show(model, "I saw a saw")`` returns an object that Jupyter
draws inline with the explorer's own page (same script and styles, inlined), the model's
answers for the sentence embedded in it: nothing is fetched, no server runs.

The page sits in an ``<iframe srcdoc=...>``, so that several of them in one notebook keep
their own element ids and styles. ``Explorer.html`` is the page alone (``save`` writes it).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import urlencode

from .why import DEFAULT_STEPS as DEFAULT_WHY_STEPS, check_steps

STATIC = Path(__file__).resolve().parent.parent / "serve" / "static"
VIEWS = ("head", "model", "steps", "compare", "why")


def _as_model(model_or_dir):
    """An ``Explainable`` from one, from a ``Tagger`` (``attnlab.load``), or from a shipped
    model's name, a tagger model directory or a Hugging Face checkpoint directory."""
    from ..api import Tagger
    from .heads import AttentionModel
    from .model import Explainable, load_explainable

    if isinstance(model_or_dir, AttentionModel):
        return model_or_dir
    if isinstance(model_or_dir, Tagger):
        return Explainable(model_or_dir, name=model_or_dir.name or "model")
    if isinstance(model_or_dir, (str, Path)):
        return load_explainable(model_or_dir)
    raise TypeError(f"show() takes a Tagger (attnlab.load), a loaded model (attnlab.viz.model.Explainable), a "
                    f"shipped model's name or a model directory, got {type(model_or_dir).__name__}")


def _answers(model, text: str, why_steps: int = 0) -> dict:
    """What the page would ask the server about ``text``: its attention, the steps of every head
    and, with ``why_steps`` > 0, the Why view's answer for every word and tag layer (``"t,LAYER"``,
    integrated gradients with that many gradient evaluations)."""
    from .payload import attention_body, steps_body
    from .why import explain_word, layer_names, to_json

    tokens = model.split(text)
    if not tokens:
        raise ValueError(f"the sentence {text!r} has no words")
    steps = {f"{l},{h}": steps_body(model, tokens, l, h)
             for l in range(model.layers) for h in range(model.heads)}
    answers = {"attention": attention_body(model, tokens), "steps": steps}
    if why_steps > 0 and not getattr(model, "no_tags", None):
        layers = layer_names(model)
        answers["why"] = {f"{t},{w.layer}": to_json(w) for t in range(len(tokens))
                          for w in explain_word(model, tokens, t, layers, steps=why_steps)}
    return answers


def _script_data(obj) -> str:
    """JSON that is safe inside <script>: no "</" (it could end the element)."""
    return json.dumps(obj, ensure_ascii=False).replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def page(model, text: str, *, compare: str | None = None, view: str = "head", layer: int = 1, head: int = 1,
         why_steps: int = DEFAULT_WHY_STEPS) -> str:
    """The explorer's page for ``text`` (and ``compare``), self-contained: layers and heads from 1;
    ``why_steps``: gradient evaluations of the Why view's answers for ``text`` (0: none)."""
    if view not in VIEWS:
        raise ValueError(f"view {view!r} is unknown; choose one of {', '.join(VIEWS)}")
    model.check_layer_head(layer - 1 if model.layers else None, head - 1 if model.heads else None)
    if why_steps:
        check_steps(why_steps)
    sentences = {text.strip(): _answers(model, text, why_steps)}
    if compare is not None:
        sentences[compare.strip()] = _answers(model, compare)
    state = {"text": text.strip(), "view": view, "layer": layer, "head": head}
    if compare is not None:
        state["compare"] = compare.strip()
    embed = {"health": {"status": "ok", "model": model.describe(), "limits": {}},
             "sentences": sentences, "hash": urlencode(state)}
    doc = (STATIC / "index.html").read_text(encoding="utf-8")
    styles = (STATIC / "style.css").read_text(encoding="utf-8")
    doc = doc.replace('<link rel="stylesheet" href="/static/style.css">', f"<style>\n{styles}</style>")
    # every script the page loads is written into it; the data goes before the first one
    doc = doc.replace('<script src="/static/', f"<script>window.ATTNLAB_EMBED = {_script_data(embed)};</script>\n"
                      '<script src="/static/', 1)
    return re.sub(r'<script src="/static/([\w.-]+\.js)"></script>',
                  lambda m: f"<script>\n{(STATIC / m.group(1)).read_text(encoding='utf-8')}</script>", doc)


class Explorer:
    """The explorer's page for one sentence, drawn inline by Jupyter (``_repr_html_``)."""

    def __init__(self, html_page: str, height: int = 760):
        self.html, self.height = html_page, height

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" title="attnlab explorer" '
                f'style="width: 100%; height: {self.height}px; border: 1px solid #d5dae0; border-radius: 4px"></iframe>')

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (an .html file any browser opens offline; ``attnlab.output``)."""
        from ..output import write_output

        write_output(path, self.html)
        return Path(path)


def show(model_or_dir, text: str, *, compare: str | None = None, view: str = "head", layer: int = 1,
         head: int = 1, height: int = 760, why_steps: int = DEFAULT_WHY_STEPS) -> Explorer:
    """The explorer for ``text`` in a notebook. ``model_or_dir``: a ``Tagger`` (``attnlab.load``),
    a loaded model (``attnlab.viz.model.load_explainable``), a shipped model's name (``"en"``), a
    tagger model directory or a Hugging Face checkpoint directory; ``compare``: a second sentence for the compare view; ``view``: head,
    model, steps, compare or why; ``layer``, ``head`` from 1; ``why_steps``: gradient evaluations
    behind the Why view of ``text`` (every word and tag layer is computed and saved in the page:
    time grows with words^2 x layers x steps; 0 leaves the view empty)."""
    model = _as_model(model_or_dir)
    return Explorer(page(model, text, compare=compare, view=view, layer=layer, head=head, why_steps=why_steps),
                    height)
