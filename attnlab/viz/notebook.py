"""The explorer in a notebook: ``show(model, "I saw a saw")`` returns an object that Jupyter
draws inline with the explorer's own page (same script and styles, inlined), the model's
answers for the sentence embedded in it: nothing is fetched, no server runs.

The page sits in an ``<iframe srcdoc=...>``, so that several of them in one notebook keep
their own element ids and styles, and sizes it to its content: the page posts its height to
the notebook's page (``postMessage``, which crosses the sandbox Jupyter front ends put outputs
in), and a small script next to the frame sets the frame's height; where the notebook does not
run scripts of an output (an untrusted notebook), the frame keeps ``height`` pixels.
``Explorer.html`` is the page alone (``save`` writes it).

The page has no server: it answers only the sentences it was made with (typing another one says
so and keeps what is shown), and its What-if view holds each word masked, for the layer and
head it was made with.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from pathlib import Path
from typing import cast
from urllib.parse import urlencode

from .why import check_steps

STATIC = Path(__file__).resolve().parent.parent / "serve" / "static"
VIEWS = ("head", "model", "steps", "compare", "whatif", "why")
AUTO_WHY_STEPS, AUTO_WHY_WORDS = 64, 12  # the saved Why view of a short sentence, in seconds


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


def _answers(model, text: str, at: tuple[int, int], whatif: bool = True, why_steps: int = 0) -> dict:
    """What the page would ask the server about ``text``: its attention, the steps of every head,
    with the projection matrices W of head ``at`` (layer, head from 0) only, as the page opens on
    it (every head's would make the page megabytes, hundreds of them for BERT-base); with
    ``whatif``, each word masked at that layer and head ("whatif", by position); with
    ``why_steps`` > 0, the Why view's answer for every word and tag layer (``"t,LAYER"``,
    integrated gradients with that many gradient evaluations)."""
    from .payload import attention_body, steps_body
    from .whatif import whatif_body
    from .why import explain_word, layer_names, to_json

    tokens = model.split(text)
    if not tokens:
        raise ValueError(f"the sentence {text!r} has no words")
    steps = {f"{l},{h}": steps_body(model, tokens, l, h, weights=(l, h) == at)
             for l in range(model.layers) for h in range(model.heads)}
    answers = {"attention": attention_body(model, tokens), "steps": steps}
    if whatif:
        answers["whatif"] = {str(i): whatif_body(model, tokens, i, None, *at) for i in range(len(tokens))}
    if why_steps > 0 and not getattr(model, "no_tags", None):
        layers = layer_names(model)
        answers["why"] = {f"{t},{w.layer}": to_json(w) for t in range(len(tokens))
                          for w in cast(list, explain_word(model, tokens, t, layers, steps=why_steps))}
    return answers


def _script_data(obj) -> str:
    """JSON that is safe inside <script>: no "</" (it could end the element)."""
    return json.dumps(obj, ensure_ascii=False).replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def page(model, text: str, *, compare: str | None = None, view: str = "head", layer: int = 1, head: int = 1,
         heads: dict | str | Path | None = None, why_steps: int | None = None) -> str:
    """The explorer's page for ``text`` (and ``compare``), self-contained: layers and heads from 1.
    ``heads``: a head report (``attnlab.viz.headstats``, or the path of one) for the model view;
    ``why_steps``: gradient evaluations of the Why view's answers for ``text`` (0: none; None:
    ``AUTO_WHY_STEPS`` for a sentence of at most ``AUTO_WHY_WORDS`` words, else none, as every
    word and layer is computed: the time grows with words^2 x layers x steps)."""
    if view not in VIEWS:
        raise ValueError(f"view {view!r} is unknown; choose one of {', '.join(VIEWS)}")
    model.check_layer_head(layer - 1 if model.layers else None, head - 1 if model.heads else None)
    if why_steps is None:
        why_steps = AUTO_WHY_STEPS if len(model.split(text)) <= AUTO_WHY_WORDS else 0
    if why_steps:
        check_steps(why_steps)
    at = (layer - 1 if model.layers else 0, head - 1 if model.heads else 0)
    sentences = {text.strip(): _answers(model, text, at, why_steps=why_steps)}
    if compare is not None:
        sentences[compare.strip()] = _answers(model, compare, at, whatif=False)
    state = {"text": text.strip(), "view": view, "layer": layer, "head": head}
    if compare is not None:
        state["compare"] = compare.strip()
    embed = {"health": {"status": "ok", "model": model.describe(), "limits": {}},
             "sentences": sentences, "hash": urlencode(state)}
    if heads is not None:
        from .headstats import read_report

        embed["heads"] = {"report": heads if isinstance(heads, dict) else read_report(heads, model)}
    doc = (STATIC / "index.html").read_text(encoding="utf-8")
    styles = (STATIC / "style.css").read_text(encoding="utf-8")
    doc = doc.replace('<link rel="stylesheet" href="/static/style.css">', f"<style>\n{styles}</style>")
    # every script the page loads is written into it; the data goes before the first one
    doc = doc.replace('<script src="/static/', f"<script>window.ATTNLAB_EMBED = {_script_data(embed)};</script>\n"
                      '<script src="/static/', 1)
    return re.sub(r'<script src="/static/([\w.-]+\.js)"></script>',
                  lambda m: f"<script>\n{(STATIC / m.group(1)).read_text(encoding='utf-8')}</script>", doc)


# Next to the frame in the notebook: sets the frame's height to what its page reports (the page
# posts {attnlab: "height", height} when its size changes, and when asked with {attnlab: "size?"}).
FIT_SCRIPT = """<script>(function () {
  var frame = document.getElementById("%s");
  if (!frame) return;
  window.addEventListener("message", function (e) {
    if (e.source !== frame.contentWindow || !e.data || e.data.attnlab !== "height") return;
    var h = Number(e.data.height);
    if (h > 0) frame.style.height = Math.min(Math.ceil(h), 20000) + 2 + "px";
  });
  if (frame.contentWindow) frame.contentWindow.postMessage({attnlab: "size?"}, "*");
})();</script>"""


class Explorer:
    """The explorer's page for one sentence, drawn inline by Jupyter (``_repr_html_``) in a frame
    that takes the height of its content (``height`` pixels until the page reports it, or where
    the notebook runs no scripts)."""

    def __init__(self, html_page: str, height: int = 760):
        self.html, self.height = html_page, height

    def _repr_html_(self) -> str:
        frame = f"attnlab-{uuid.uuid4().hex[:12]}"
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" id="{frame}" title="attnlab explorer" '
                f'style="width: 100%; height: {self.height}px; border: 1px solid #d5dae0; border-radius: 4px"></iframe>'
                + FIT_SCRIPT % frame)

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (an .html file any browser opens offline; ``attnlab.output``)."""
        from ..output import write_output

        write_output(path, self.html)
        return Path(path)


def show(model_or_dir, text: str, *, compare: str | None = None, view: str = "head", layer: int = 1,
         head: int = 1, height: int = 760, heads: dict | str | Path | None = None,
         why_steps: int | None = None) -> Explorer:
    """The explorer for ``text`` in a notebook. ``model_or_dir``: a ``Tagger`` (``attnlab.load``;
    its tags and probabilities in its own precision: a name or directory is loaded in fp32),
    a loaded model (``attnlab.viz.model.load_explainable``), a shipped model's name (``"en"``), a
    tagger model directory or a Hugging Face checkpoint directory; ``compare``: a second sentence for the compare view; ``view``: head,
    model, steps, compare, whatif or why; ``layer``, ``head`` from 1 (the What-if view holds each
    word masked at that layer and head); ``heads``: a head report (``attnlab heads --json``, or
    its dict) whose numbers the model view shows beside every head; ``height``: the frame's
    pixels until its page reports its own height; ``why_steps``: gradient evaluations behind the
    Why view of ``text`` (every word and tag layer is computed and saved in the page: time grows
    with words^2 x layers x steps; 0 leaves the view empty; by default 64 for a sentence of at
    most 12 words, else 0)."""
    model = _as_model(model_or_dir)
    return Explorer(page(model, text, compare=compare, view=view, layer=layer, head=head, heads=heads,
                         why_steps=why_steps), height)
