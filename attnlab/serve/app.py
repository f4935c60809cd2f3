"""The attention explorer: a JSON API and one page, as an ASGI app (Starlette).

Endpoints (all JSON; every error is ``{"error": "<one line>"}`` with a 4xx/5xx status):

    GET  /api/health      {"status": "ok", "model": {...}, "limits": {...}}
    POST /api/tag         a document: {"text": "Dr. Smith didn't stay. He left."} (raw text, cut
                          into sentences, tokens and multiword tokens by the model's segmenter;
                          a model without one reads it as one sentence of the words of
                          ``attnlab.data.tokenize.tokenize``), {"sentences": [["I", "saw"],
                          ["It", "ran"]]} (pre-tokenized) or {"tokens": ["I", "saw"]} (one
                          sentence) -> {"tokens": [...], "tags": [...], "probabilities": [...]}
                          (every word of the document in order, its UPOS and their
                          probabilities), "predicted" (the layers the model predicts: "upos",
                          then "xpos", "feats", "lemma" as it has them), "sentences": [{"text"
                          (null when pre-tokenized), "words": [{"id", "form", "upos", "xpos",
                          "feats" (CoNLL-U: "Case=Nom|Number=Sing", "_" for none), "lemma",
                          "probs": {layer: probability}}], "tokens": [{"form", "start", "end"
                          (character offsets: text[start:end] == form; null when
                          pre-tokenized), "words" (indices into "words", from 0)}]}] and
                          "conllu" (the document as CoNLL-U; for raw text, HEAD and DEPREL
                          hold a placeholder tree, not a parse: ``attnlab.data.rawtext``).
                          xpos is null without an XPOS layer; feats and lemma are predicted
                          only when "predicted" names them ("_" and null otherwise). 422 for
                          a model without tags (a checkpoint's word pieces)
    POST /api/attention   one sentence: {"text": "I saw a saw"} (its words as the model's
                          segmenter or tokenizer finds them, all in one row) or {"tokens": [...]}
                          -> "tokens", "tags" (UPOS), "probabilities", "annotations"
                          (every layer the tagger predicts, through ``attnlab.api.Tagger``:
                          [{"name", "tags", "probabilities"}] for UPOS, then XPOS, FEATS,
                          LEMMA as it has them),
                          "layers", "heads", "normalize" and "weights": [L][H][n][n],
                          weights[l][h][i][j] = alpha'_(i,j) of head h in layer l (query token
                          i, key token j; numbered from 0); for a model without attention,
                          layers = heads = 0, weights = [] and "no_attention" says why;
                          for a Hugging Face checkpoint, "tokens" are its word pieces (special
                          ones included), tags = annotations = [] and "no_tags" says why
    POST /api/steps       {"text" or "tokens", "layer": l, "head": h} (from 0) -> the seed's
                          steps of that head: "q", "k", "v" ([n][d], row i = token i), "alpha"
                          and "alpha_prime" ([n][n]), "b" ([n][d]), "d", "normalizer" (one
                          number per query i) and "normalizer_formula"; what the model adds to
                          the seed ("additions", named): "a" ([n][D], the layer's input after
                          its norm), "W" and "bias" of the head, and with rotary positions
                          "q_projected", "k_projected" (before the turn) and "theta"
    GET  /api/heads       what each head does over a treebank, when the server was given a
                          report (``attnlab serve --heads`` or ``--treebank``): {"report": the
                          report of ``attnlab.viz.headstats``} (per head: entropy, distance,
                          best relation against the fixed-offset baseline, importance), else
                          {"report": null, "reason": "..."}
    POST /api/whatif      {"text" or "tokens", "position": i (from 0), "replacement": "word"
                          or "mask": true, "layer": l, "head": h (from 0; default 0)} -> word i
                          replaced (or masked: the model's unknown-word input, which
                          "mask_input" describes) and what changes: "tokens", "changed", every
                          tag layer's best value and probability before and after
                          ("annotations": [{"name", "before", "after", "after_of_before",
                          "change", "largest"}]), the (word, layer) rows sorted by the largest
                          change of any value's probability ("changes"), and head h of layer
                          l's attention "before", "after" and "difference" (after - before,
                          [n][n]); ``attnlab.viz.whatif``
    POST /api/why         {"text" or "tokens", "word": t (from 0), "layer": "UPOS" (or XPOS, FEATS,
                          LEMMA as the model predicts them; default UPOS)} -> why word t got its
                          tag (``attnlab.viz.why``): "tag", "probability", the logit at the input
                          and at the baseline ("score", "baseline_score", "difference"),
                          "attributions" and "share" ([n], integrated gradients), "rollout"
                          ([n], row t of attention rollout; null without attention), "sum",
                          "gap" and "relative_gap" (the completeness check), "steps" (256 up to
                          32 words, then fewer: ``attnlab.viz.why.page_steps``), "rule",
                          "baseline"; 422 for a model without tags
    GET  /                the explorer page; its script and styles are under /static/

Several models (``create_app([a, b])``, ``attnlab serve --model A --model B``): every POST may
name one with "model" (its name as ``/api/health`` lists it under "models"); without it, the
first answers.

Limits (``Limits``, listed by ``/api/health``): a body over ``max_body_bytes``, a sentence over
``max_tokens`` words or a word over ``max_token_chars`` characters is refused with 413, and so
is an ``/api/tag`` request past ``max_text_chars`` characters of text, ``max_sentences``
sentences or ``max_words`` words; the message names the limit and its number. A POST whose
Content-Type is not ``application/json`` is refused with 415 (so that a page on another site
cannot reach the model with a form or a "simple" request); a body that is not JSON, or holds
what JSON cannot carry as text (a lone surrogate, a number too long to read), with 400; JSON
of the wrong shape with 422, naming the field and the index (``"sentences"[2][0] must be a
non-empty string, got 5``). Unexpected failures are logged by the server (uvicorn) and
answered with a plain 500 message, never a traceback; a client that goes away before its
request is read is a normal end, not an error. Requests whose Host header is not one of
``allowed_hosts`` (the loopback names unless told otherwise; never a pattern) are refused with
400 (DNS rebinding). Every response carries the headers of ``SecurityHeaders``. ``/api/tag``
requests that arrive together are tagged in shared forward passes (``TagBatcher``), all their
sentences together.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from ..viz.payload import attention_body, rounded, steps_body
from ..viz.whatif import whatif_body

from ..config import check_positive

if TYPE_CHECKING:
    import asyncio

STATIC = Path(__file__).parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: bytes of its body, words of one sentence, characters of one
    word; for ``/api/tag``, characters of raw text, sentences and words (all sentences together)."""

    max_body_bytes: int = 64 * 1024
    max_tokens: int = 128  # words of one sentence
    max_token_chars: int = 100  # characters of one word
    max_text_chars: int = 10_000  # characters of a raw text (/api/tag)
    max_sentences: int = 100  # sentences of one /api/tag request
    max_words: int = 2_000  # words of one /api/tag request, all its sentences together

    def __post_init__(self):
        check_positive(self, [f.name for f in fields(self)])


class ApiError(Exception):
    """A request the API refuses: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# -- reading requests ------------------------------------------------------------------

def require_json(content_type: str | None) -> None:
    """Refuse (415) a body not declared as ``application/json`` (parameters such as charset aside)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind != "application/json":
        got = f"got {content_type[:60]!r}" if content_type else "got none"
        raise ApiError(415, f"send the body with Content-Type: application/json ({got})")


async def read_body(request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise ApiError(413, f"request body is {size} bytes; this server accepts at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over {limit} bytes, the most this server accepts")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes):
    if not body.strip():
        raise ApiError(400, 'request body is empty; send a JSON object such as {"text": "I saw a saw"}')
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    except ValueError:  # an integer over Python's limit on digits (sys.get_int_max_str_digits)
        raise ApiError(400, "request body holds a number with too many digits to read") from None


def _check_text(value: str, where: str) -> None:
    """Refuse (400) a string that is not Unicode text: a lone surrogate that JSON's \\uXXXX allows."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(400, f"{where} holds {ascii(value[exc.start])}, a lone surrogate, which is not a character") from None


def sentence_tokens(obj, limits: Limits, extra: tuple[str, ...] = (), split=None) -> list[str]:
    """The tokens of ``{"text": str}`` or ``{"tokens": [str, ...]}``; 422 / 413 otherwise.
    ``extra``: the other fields the endpoint reads (checked by the caller); ``split``: how the
    model splits a text into its tokens (default: words, ``attnlab.data.tokenize.tokenize``)."""
    from ..viz.model import tokenize

    if not isinstance(obj, dict):
        raise ApiError(422, f'expected a JSON object with "text" or "tokens", got a JSON {_json_type(obj)}')
    unknown = sorted(set(obj) - {"text", "tokens", *extra})
    if unknown:
        raise ApiError(422, f'unknown field {unknown[0]!r}; send "text" (a string) or "tokens" (a list of strings)')
    if ("text" in obj) == ("tokens" in obj):
        raise ApiError(422, 'send exactly one of "text" (a string) or "tokens" (a list of strings)')
    if "tokens" in obj:
        return word_list(obj["tokens"], '"tokens"', limits)
    text = obj["text"]
    if not isinstance(text, str):
        raise ApiError(422, f'"text" must be a string, got a JSON {_json_type(text)}')
    if len(text) > limits.max_tokens * (limits.max_token_chars + 1):
        raise ApiError(413, f'"text" is {len(text)} characters long; send at most {limits.max_tokens} words')
    _check_text(text, '"text"')
    tokens = (split or tokenize)(text)
    if not tokens:
        raise ApiError(422, "the sentence has no words")
    if len(tokens) > limits.max_tokens:
        raise ApiError(413, f"the sentence has {len(tokens)} tokens; this server tags at most {limits.max_tokens} per request")
    for i, t in enumerate(tokens):
        if len(t) > limits.max_token_chars:
            raise ApiError(413, f"token {i} is {len(t)} characters long; at most {limits.max_token_chars} are accepted")
    return tokens


def word_list(words, field: str, limits: Limits) -> list[str]:
    """``words`` (the value of ``field``, e.g. ``"tokens"``) as one sentence's words: a list of
    non-empty strings without tabs or line breaks; 422 / 400 naming the field and index
    otherwise, 413 past ``max_tokens`` words or ``max_token_chars`` characters a word."""
    if not isinstance(words, list):
        raise ApiError(422, f"{field} must be a list of strings, got a JSON {_json_type(words)}")
    for i, w in enumerate(words[: limits.max_tokens + 1]):
        if not isinstance(w, str) or not w.strip():
            raise ApiError(422, f"{field}[{i}] must be a non-empty string, got {json.dumps(w)[:40]}")
        if any(c in w for c in "\t\n\r"):
            raise ApiError(422, f"{field}[{i}] holds a tab or line break, which no word may hold")
        _check_text(w, f"{field}[{i}]")
    if not words:
        raise ApiError(422, f"{field} has no words")
    if len(words) > limits.max_tokens:
        raise ApiError(413, f"{field} has {len(words)} words; this server tags at most {limits.max_tokens} words per sentence")
    for i, w in enumerate(words):
        if len(w) > limits.max_token_chars:
            raise ApiError(413, f"{field}[{i}] is {len(w)} characters long; at most {limits.max_token_chars} are accepted")
    return words


TAG_FIELDS = '"text" (a string), "sentences" (a list of lists of strings) or "tokens" (a list of strings)'


def tag_request(obj, limits: Limits) -> tuple[str | None, list[list[str]]]:
    """What a ``/api/tag`` body asks for: ``(text, [])`` for ``{"text": str}`` (a raw document),
    ``(None, sentences)`` for ``{"sentences": [[str, ...], ...]}`` or ``{"tokens": [str, ...]}``
    (one sentence); 422 naming the field and index for a wrong shape (400 for a lone
    surrogate), 413 past a limit."""
    if not isinstance(obj, dict):
        raise ApiError(422, f'expected a JSON object with "text", "sentences" or "tokens", got a JSON {_json_type(obj)}')
    unknown = sorted(set(obj) - {"text", "sentences", "tokens"})
    if unknown:
        raise ApiError(422, f"unknown field {unknown[0]!r}; send {TAG_FIELDS}")
    if len(obj) != 1:
        raise ApiError(422, f"send exactly one of {TAG_FIELDS}")
    if "text" in obj:
        text = obj["text"]
        if not isinstance(text, str):
            raise ApiError(422, f'"text" must be a string, got a JSON {_json_type(text)}')
        if len(text) > limits.max_text_chars:
            raise ApiError(413, f'"text" is {len(text)} characters long; this server tags at most '
                                f"{limits.max_text_chars} characters of text per request")
        _check_text(text, '"text"')
        return text, []
    if "tokens" in obj:
        sentences = [word_list(obj["tokens"], '"tokens"', limits)]
    else:
        given = obj["sentences"]
        if not isinstance(given, list):
            raise ApiError(422, f'"sentences" must be a list of sentences (lists of strings), got a JSON {_json_type(given)}')
        if not given:
            raise ApiError(422, '"sentences" is empty; send at least one sentence (a list of strings)')
        if len(given) > limits.max_sentences:
            raise ApiError(413, f'"sentences" holds {len(given)} sentences; this server tags at most '
                                f"{limits.max_sentences} sentences per request")
        sentences = [word_list(words, f'"sentences"[{i}]', limits) for i, words in enumerate(given)]
    check_words_per_request(sum(map(len, sentences)), "the request", limits)
    return None, sentences


def check_words_per_request(count: int, what: str, limits: Limits) -> None:
    """Refuse (413) ``count`` words in one request (``what``: "the request", "the text") past ``max_words``."""
    if count > limits.max_words:
        raise ApiError(413, f"{what} has {count} words; this server tags at most {limits.max_words} words per request")


def check_segmented(sentences: list, limits: Limits) -> None:
    """Refuse (422) a text without words, and (413) one whose sentences, found by the model,
    are past the limits: sentences and words per request, words per sentence, characters a word."""
    if not sentences:
        raise ApiError(422, "the text has no words")
    if len(sentences) > limits.max_sentences:
        raise ApiError(413, f"the text has {len(sentences)} sentences; this server tags at most "
                            f"{limits.max_sentences} sentences per request")
    for i, sentence in enumerate(sentences):
        words = sentence.tokens
        if len(words) > limits.max_tokens:
            raise ApiError(413, f"sentence {i} of the text (from 0) has {len(words)} words; this server tags at most "
                                f"{limits.max_tokens} words per sentence")
        for j, word in enumerate(words):
            if len(word.form) > limits.max_token_chars:
                raise ApiError(413, f"word {j} of sentence {i} of the text (both from 0) is {len(word.form)} characters "
                                    f"long; at most {limits.max_token_chars} are accepted")
    check_words_per_request(sum(len(s.tokens) for s in sentences), "the text", limits)


def tag_body(sentences: list, text: str | None) -> dict:
    """The answer of ``/api/tag`` for its tagged sentences (``attnlab.api.TaggedSentence``) and
    the raw ``text`` they were cut from (None: pre-tokenized)."""
    from ..api import Document

    words = [w for s in sentences for w in s.words]
    return {
        "tokens": [w.form for w in words], "tags": [w.upos for w in words],
        "probabilities": [rounded(w.probs["upos"]) for w in words],
        "predicted": list(sentences[0].layers),
        "sentences": [sentence_json(s) for s in sentences],
        "conllu": Document(sentences, text or "").to_conllu(),
    }


def sentence_json(sentence) -> dict:
    """One ``TaggedSentence`` as ``/api/tag`` gives it: its text, its words with every layer and
    each layer's probability, its surface tokens with their offsets and the indices of their words."""
    tokens, first = [], 0
    for token in sentence.tokens:
        tokens.append({"form": token.form, "start": token.start, "end": token.end,
                       "words": list(range(first, first + len(token.words)))})
        first += len(token.words)
    return {
        "text": sentence.text,
        "words": [{"id": w.id, "form": w.form, "upos": w.upos, "xpos": w.xpos, "feats": w.column("feats"),
                   "lemma": w.lemma, "probs": {layer: rounded(p) for layer, p in w.probs.items()}} for w in sentence],
        "tokens": tokens,
    }


def layer_and_head(obj: dict, model) -> tuple[int, int]:
    """``obj["layer"]``, ``obj["head"]`` (numbered from 0) of a model that has them; 422 otherwise."""
    if model.no_attention is not None:
        raise ApiError(422, model.no_attention)
    found = []
    for name, count in (("layer", model.layers), ("head", model.heads)):
        value = obj.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(422, f'"{name}" must be a whole number from 0 to {count - 1}, got {json.dumps(value)[:40]}')
        if not 0 <= value < count:
            raise ApiError(422, f'"{name}" {value} does not exist: the model has {count} (numbered from 0 to {count - 1})')
        found.append(value)
    return found[0], found[1]


def whatif_request(obj: dict, limits: Limits) -> tuple[int, str | None]:
    """(position, replacement) of a ``/api/whatif`` body; replacement None: mask the word.
    422 for a wrong shape, 413 for a replacement past ``max_token_chars``."""
    position = obj.get("position")
    if isinstance(position, bool) or not isinstance(position, int):
        raise ApiError(422, f'"position" must be a whole number (the word, from 0), got {json.dumps(position)[:40]}')
    if ("replacement" in obj) == ("mask" in obj):
        raise ApiError(422, 'send exactly one of "replacement" (a word) or "mask": true')
    if "mask" in obj:
        if obj["mask"] is not True:
            raise ApiError(422, f'"mask" must be true, got {json.dumps(obj["mask"])[:40]}')
        return position, None
    word = obj["replacement"]
    if not isinstance(word, str) or not word.strip():
        raise ApiError(422, f'"replacement" must be a non-empty string, got {json.dumps(word)[:40]}')
    if any(c.isspace() for c in word):
        raise ApiError(422, '"replacement" must be one word: it holds a space, tab or line break')
    _check_text(word, '"replacement"')
    if len(word) > limits.max_token_chars:
        raise ApiError(413, f'"replacement" is {len(word)} characters long; at most {limits.max_token_chars} are accepted')
    return position, word


def optional_layer_and_head(obj: dict, model) -> tuple[int, int]:
    """``layer_and_head`` when the body names them (each defaults to 0); (0, 0) for a model
    without attention."""
    if model.no_attention is not None:
        return 0, 0
    return layer_and_head({"layer": 0, "head": 0, **obj}, model)


def model_names(models) -> list[str]:
    """One name per model, as requests give it: its own, numbered when another has the same (``en``, ``en (2)``)."""
    names: list[str] = []
    for m in models:
        own = getattr(m, "name", None) or "model"
        name, k = own, 1
        while name in names:
            k += 1
            name = f"{own} ({k})"
        names.append(name)
    return names


def word_and_layer(obj: dict, model, n: int) -> tuple[int, str]:
    """``obj["word"]`` (from 0, of a sentence of ``n`` words) and ``obj["layer"]`` (a tag layer
    the model predicts, default UPOS) for ``/api/why``; 422 otherwise."""
    from ..viz.why import layer_names

    if getattr(model, "no_tags", None):
        raise ApiError(422, model.no_tags)
    word = obj.get("word")
    if isinstance(word, bool) or not isinstance(word, int):
        raise ApiError(422, f'"word" must be a whole number from 0 to {n - 1}, got {json.dumps(word)[:40]}')
    if not 0 <= word < n:
        raise ApiError(422, f'"word" {word} does not exist: the sentence has {n} words (numbered from 0 to {n - 1})')
    layer, names = obj.get("layer", "UPOS"), layer_names(model)
    if not isinstance(layer, str) or layer.upper() not in names:
        raise ApiError(422, f'"layer" must be one of {", ".join(names)}, got {json.dumps(layer)[:40]}')
    return word, layer.upper()


def _json_type(x) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(x), "number" if isinstance(x, (int, float)) else type(x).__name__
    )


# -- tagging many requests in one forward pass -------------------------------------------

class TagBatcher:
    """Concurrent ``/api/tag`` requests share forward passes.

    ``tag``, given to the constructor, takes the items of several requests (for ``/api/tag``:
    each request's sentences) and returns one result per item. A request that finds the model
    idle runs at once, alone; requests that arrive while the model is busy wait, and all of
    them (up to ``max_batch``) go through the next pass together. No request waits for others
    to arrive, so a lone request is as fast as without batching, and under load the model runs
    few large batches instead of many small ones. Lives on the server's event loop (no locks:
    only one coroutine touches ``pending``).
    """

    def __init__(self, tag, max_batch: int = 32):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._tag, self.max_batch = tag, max_batch
        self.pending: list = []  # (item, future)
        self._worker: asyncio.Task[None] | None = None  # the task draining ``pending``, while there is one
        self.passes = 0  # forward passes run (for tests and logs)

    async def tag(self, item):
        import asyncio

        future = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        from starlette.concurrency import run_in_threadpool

        try:
            while self.pending:
                batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch:]
                self.passes += 1
                try:
                    results = await run_in_threadpool(self._tag, [item for item, _ in batch])
                except Exception as exc:  # every request of the batch gets the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():  # the client may have gone
                        future.set_result(result)
        finally:
            self._worker = None


# -- the app ---------------------------------------------------------------------------

def error_response(status: int, message: str):
    """``{"error": message}`` with ``status``: how the explorer answers whatever it refuses."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


async def answer(function, *args):
    """``function(*args)`` in a worker thread; a ValueError (input the model cannot take, such as
    a word piece outside a checkpoint's vocabulary) is answered with 422."""
    from starlette.concurrency import run_in_threadpool

    try:
        return await run_in_threadpool(function, *args)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


NO_HEADS = "no head report: start the server with --heads REPORT.json (from `attnlab heads --json`) or --treebank DIR"


def create_app(model, *, limits: Limits = Limits(), allowed_hosts=LOOPBACK, max_batch: int = 32,
               heads: dict | None = None):
    """The explorer for ``model`` (an ``attnlab.viz.model.Explainable`` or anything with its
    ``segment``, ``tag_sentences``, ``attention``, ``annotate`` and ``describe`` methods; its
    ``split``, when it has one, splits a text into the tokens ``/api/attention`` takes, its
    ``no_tags`` says why it has no tags), or a list of such models: requests name the one
    they ask (``"model"``; the first by default). ``allowed_hosts``:
    the names and addresses a request's Host header may give (default: the loopback names; see
    ``host_name``; no patterns, so the check is never off). ``max_batch``: most ``/api/tag``
    requests tagged in one forward pass (1 = one at a time). ``heads``: a head report
    (``attnlab.viz.headstats``) that ``GET /api/heads`` gives the page."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    hosts = frozenset(host_name(h) for h in allowed_hosts)
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if not models:
        raise ValueError("create_app needs at least one model")
    names = model_names(models)
    by_name = dict(zip(names, models))

    def tag_requests_of(m):
        def tag_requests(requests: list[list]) -> list[list]:
            """Every request's sentences tagged in one call of the model (one or more forward passes)."""
            tagged = m.tag_sentences([s for sentences in requests for s in sentences])
            out, first = [], 0
            for sentences in requests:
                out.append(tagged[first:first + len(sentences)])
                first += len(sentences)
            return out
        return tag_requests

    batchers = {name: TagBatcher(tag_requests_of(m), max_batch) for name, m in by_name.items()}

    def chosen(obj) -> tuple[str, object, object]:
        """(name, model, the body without "model") of a request; 422 for a model this server does not have."""
        if not isinstance(obj, dict) or "model" not in obj:
            return names[0], models[0], obj
        name = obj["model"]
        if name not in by_name:
            raise ApiError(422, f'"model" {json.dumps(name)[:60]} is not a model of this server; it has '
                                f"{', '.join(map(json.dumps, names))}")
        return name, by_name[name], {k: v for k, v in obj.items() if k != "model"}

    async def request_json(request):
        require_json(request.headers.get("content-type"))
        return parse_json(await read_body(request, limits.max_body_bytes))

    async def health(request):
        described = [{**m.describe(), "name": name} for name, m in by_name.items()]
        return JSONResponse({"status": "ok", "model": described[0], "models": described, "limits": asdict(limits)})

    async def tag(request):
        from starlette.concurrency import run_in_threadpool

        from ..data.conllu import Sentence

        name, m, obj = chosen(await request_json(request))
        if getattr(m, "no_tags", None):
            raise ApiError(422, m.no_tags)
        text, words = tag_request(obj, limits)
        if text is not None:
            sentences = await answer(m.segment, text)
            check_segmented(sentences, limits)
        else:
            sentences = [Sentence.from_words(w) for w in words]
        tagged = await batchers[name].tag(sentences)
        return JSONResponse(await run_in_threadpool(tag_body, tagged, text))

    async def attention(request):
        _, m, obj = chosen(await request_json(request))
        tokens = sentence_tokens(obj, limits, split=getattr(m, "split", None))
        return JSONResponse(await answer(attention_body, m, tokens))

    async def steps(request):
        _, m, obj = chosen(await request_json(request))
        tokens = sentence_tokens(obj, limits, extra=("layer", "head"), split=getattr(m, "split", None))
        layer, head = layer_and_head(obj, m)
        return JSONResponse(await answer(steps_body, m, tokens, layer, head))

    async def whatif(request):
        _, m, obj = chosen(await request_json(request))
        tokens = sentence_tokens(obj, limits, extra=("position", "replacement", "mask", "layer", "head"),
                                 split=getattr(m, "split", None))
        position, replacement = whatif_request(obj, limits)
        if not 0 <= position < len(tokens):
            raise ApiError(422, f'"position" {position} is not a word of the sentence: it has {len(tokens)} '
                                f"(numbered from 0 to {len(tokens) - 1})")
        layer, head = optional_layer_and_head(obj, m)
        return JSONResponse(await answer(whatif_body, m, tokens, position, replacement, layer, head))

    async def head_report(request):
        return JSONResponse({"report": heads} if heads is not None else {"report": None, "reason": NO_HEADS})

    async def why(request):
        from ..viz.why import why_body

        _, m, obj = chosen(await request_json(request))
        tokens = sentence_tokens(obj, limits, extra=("word", "layer"), split=getattr(m, "split", None))
        word, layer = word_and_layer(obj, m, len(tokens))
        return JSONResponse(await answer(why_body, m, tokens, word, layer))

    async def index(request):
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def no_page(request):
        raise HTTPException(404)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/api/health", health, methods=["GET"]),
        Route("/api/tag", tag, methods=["POST"]),
        Route("/api/attention", attention, methods=["POST"]),
        Route("/api/steps", steps, methods=["POST"]),
        Route("/api/heads", head_report, methods=["GET"]),
        Route("/api/whatif", whatif, methods=["POST"]),
        Route("/api/why", why, methods=["POST"]),
        Route("/static", no_page),  # the assets' folder is not a page: 404, not a redirect to /static/
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(HostCheck, hosts=hosts)], exception_handlers=_error_handlers())
    # outside Starlette's own error handling, so that its 500 answers carry the headers too
    app.middleware_stack = SecurityHeaders(app.build_middleware_stack())
    app.state.batcher = batchers[names[0]]
    app.state.batchers = batchers
    return app


def _error_handlers() -> dict:
    """How the app answers what it raises, by exception class."""
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    async def api_error(request, exc: ApiError):
        return error_response(exc.status, exc.message)

    async def http_error(request, exc: HTTPException):
        messages = {404: f"no such page: {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    async def client_gone(request, exc: ClientDisconnect):  # a normal end: nobody reads this answer
        return error_response(400, "the connection closed before the whole request arrived")

    async def server_error(request, exc: Exception):  # uvicorn logs the traceback
        return error_response(500, "internal error while answering the request (details are in the server's log)")

    return {ApiError: api_error, HTTPException: http_error, ClientDisconnect: client_gone, Exception: server_error}


# -- what every request and response goes through ----------------------------------------

def host_name(name: str) -> str:
    """``name`` (a host name or an IP address, as given to ``allowed_hosts``) the way the Host
    check compares it: lower case, an IPv6 address without brackets. ValueError for anything
    else: a pattern such as ``*``, a port, a URL."""
    bare = name.strip().lower().removeprefix("[").removesuffix("]")
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
            return bare
        except ValueError:
            pass
    elif re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?", bare):
        return bare
    raise ValueError(f"{name!r} is not a host name or an IP address (patterns such as '*' and ports are not accepted)")


def _host_of(header: str) -> str:
    """The name or address in a Host header, without the port: ``[::1]:8000`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0]


class HostCheck:
    """ASGI middleware: refuse (400) a request whose Host header is not one of ``hosts``, so that
    a page on another site whose name is pointed at this machine (DNS rebinding) gets nothing."""

    def __init__(self, app, hosts: frozenset[str]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if _host_of(host) not in self.hosts:
                shown = f"Host {host[:80]!r}" if host else "a request without a Host header"
                response = error_response(400, f"this server does not answer {shown}; it answers "
                                               f"{', '.join(sorted(self.hosts))}")
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: the page may load only its own scripts, styles and images."""

    HEADERS = [
        (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
