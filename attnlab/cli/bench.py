"""`attnlab bench <benchmark>`: attention, encoder, hf, serve, treebanks, tag, explorer and calibrate.

Parses the options into the benchmark's config, runs it (``attnlab.bench``), prints its report
and writes the JSON if asked. The benchmarks import torch when they run, not here.
"""

from __future__ import annotations

from pathlib import Path

from ..bench.attention import DEFAULT_SIZES
from ..bench.serve_load import MAX_CLIENTS
from ..errors import UserError, require_extra
from ..output import is_stdout, output_path, write_output
from ..options import Range, int_range, positive_float, positive_int, seed


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks with side-by-side ratios", description="Benchmarks that measure attnlab beside PyTorch in the same run and print medians and ratios.")
    bsub = p.add_subparsers(dest="bench", metavar="<benchmark>", required=True)
    _add_attention(bsub)
    _add_encoder(bsub)
    _add_hf(bsub)
    _add_serve(bsub)
    _add_treebanks(bsub)
    _add_tag(bsub)
    _add_explorer(bsub)
    _add_calibrate(bsub)


def _show(text: str, report: dict, json_path) -> None:
    """Print a benchmark's report and, with --json, write its figures (``attnlab.output``)."""
    print(text)
    if json_path:
        from ..checkpoint import json_bytes

        write_output(json_path, json_bytes(report))
        if not is_stdout(json_path):
            print(f"wrote {json_path}")


TREEBANK_HELP = "directory with *train*.conllu (default: $ATTNLAB_DATA, else the shipped EWT length histogram)"


# -- attention -----------------------------------------------------------------------------

def _add_attention(bsub) -> None:
    p = bsub.add_parser(
        "attention",
        help="attention kernels and layers vs PyTorch: time, GFLOP/s, share of matmul, memory",
        description=(
            "attnlab fused / readable attention, torch SDPA and plain matmul-softmax-matmul on (B, H, N, d); "
            "torch.nn.MultiheadAttention and attnlab.MultiHeadSelfAttention (with projections) on (B, N, H*d). "
            "Prints median time, GFLOP/s, the ratio to the best torch.mm rate of the same run and peak memory."
        ),
    )
    p.add_argument("--json", type=output_path, default=None, metavar="FILE", help="also write the full results as JSON")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=None, metavar="N", help=f"sequence lengths (default {' '.join(map(str, DEFAULT_SIZES))})")
    p.add_argument("--repeats", type=positive_int, default=None, metavar="R", help="interleaved repetitions per size (default 7; slow sizes use fewer, at least 3)")
    p.add_argument("--heads", type=positive_int, default=8, help="heads H (default 8)")
    p.add_argument("--head-dim", type=positive_int, default=64, help="head width d (default 64)")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size B (default 1)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--memory-budget-gib", type=positive_float, default=8.0, help="skip cases whose N x N buffers and inputs exceed this (default 8)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--quick", action="store_true", help="tiny sizes and short samples (a smoke test, not a measurement)")
    p.set_defaults(func=_run_attention)


def attention_config(args):
    """The ``BenchConfig`` of `attnlab bench attention` with these options."""
    from ..bench.attention import QUICK_SIZES, BenchConfig

    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    common = dict(
        sizes=sizes, batch=args.batch, heads=args.heads, head_dim=args.head_dim,
        memory_budget_gib=args.memory_budget_gib, measure_memory=not args.no_memory, threads=args.threads or 0,
    )
    if args.quick:
        return BenchConfig(**common, repeats=args.repeats or 3, min_sample_s=0.002, case_budget_s=1.0, matmul_sizes=(64, 128))
    return BenchConfig(**common, repeats=args.repeats or BenchConfig.repeats)


def _run_attention(args) -> int:
    from ..bench.attention import format_report, run

    cfg = attention_config(args)
    print(f"attnlab bench attention: sizes {', '.join(map(str, cfg.sizes))} ...", flush=True)
    report = run(cfg, log=lambda s: print(s, flush=True))
    _show(format_report(report), report, args.json)
    return 0


# -- encoder -------------------------------------------------------------------------------

def _add_encoder(bsub) -> None:
    p = bsub.add_parser(
        "encoder",
        help="packed TransformerEncoder vs torch.nn.TransformerEncoder; long sequences vs SDPA",
        description=(
            "Batches of sentences with treebank lengths through attnlab's packed encoder and "
            "torch.nn.TransformerEncoder (inference and training), interleaved, medians; then long "
            "single sequences through attnlab.varlen_attention and torch SDPA (time, peak memory)."
        ),
    )
    p.add_argument("--treebank", default=None, help=TREEBANK_HELP)
    p.add_argument("--json", type=output_path, default=None, metavar="FILE", help="also write the full report to this file")
    p.add_argument("--quick", action="store_true", help="a short run: fewer batches and repeats, N up to 4096, norm_first=True only")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--repeats", type=positive_int, default=None, help="interleaved repetitions per setting")
    p.add_argument("--no-memory", action="store_true", help="skip the subprocess memory probes")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler tables of one pass")
    p.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's malloc thresholds alone")
    p.set_defaults(func=_run_encoder)


def encoder_config(args):
    """The ``EncoderBenchConfig`` of `attnlab bench encoder` with these options."""
    from ..bench.encoder import QUICK, EncoderBenchConfig

    kw = dict(QUICK) if args.quick else {}
    if args.repeats is not None:
        kw["repeats"] = args.repeats
    return EncoderBenchConfig(
        treebank=args.treebank, measure_memory=not args.no_memory, profile=args.profile,
        malloc_tuning=not args.no_malloc_tuning, threads=args.threads or 0, **kw,
    )


def _run_encoder(args) -> int:
    from ..bench.encoder import format_report, run

    report = run(encoder_config(args))
    _show(format_report(report), report, args.json)
    return 0


# -- hf ------------------------------------------------------------------------------------

def _add_hf(bsub) -> None:
    p = bsub.add_parser(
        "hf",
        help="a bert-base-sized checkpoint: attnlab packed vs transformers (sdpa, eager) and ONNX Runtime",
        description=(
            "One random bert-base-sized checkpoint (12 layers, 768 wide, 12 heads) through attnlab's packed "
            "encoder, transformers (sdpa and eager attention, padded) and ONNX Runtime (exported and fused by "
            "its transformer optimiser, padded): batches of 64 sentences with EWT's lengths in word pieces, "
            "torch.inference_mode, interleaved, medians, speed-ups. Needs the 'hf' extra."
        ),
    )
    p.add_argument("--quick", action="store_true", help="one batch, three rounds (same model size)")
    p.add_argument("--treebank", default=None, help=TREEBANK_HELP)
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads and ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--batches", type=positive_int, default=None, help="different batches of 64 per sample (default 3)")
    p.add_argument("--repeats", type=positive_int, default=None, help="interleaved rounds (default 5)")
    p.add_argument("--pieces-per-word", type=Range(float, 1.0), default=None, help="word pieces per treebank word (default 1.3)")
    p.add_argument("--no-onnx", action="store_true", help="leave ONNX Runtime out")
    p.add_argument("--bf16", action="store_true", help="also attnlab in bfloat16: its speed and accuracy against float32")
    p.add_argument("--int8", action="store_true",
                   help="also attnlab with int8 linear layers (weights per channel, inputs per row): its speed and "
                        "accuracy against float32")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler tables of one batch")
    p.add_argument("--json", type=output_path, default=None, metavar="FILE", help="also write the full report to this file")
    p.set_defaults(func=_run_hf)


def hf_config(args):
    """The ``HFBenchConfig`` of `attnlab bench hf` with these options."""
    from ..bench.hf import QUICK, HFBenchConfig

    options = dict(QUICK) if args.quick else {}
    for name in ("batches", "repeats", "pieces_per_word"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return HFBenchConfig(threads=args.threads, onnx=not args.no_onnx, bf16=args.bf16, int8=args.int8, profile=args.profile,
                         treebank=args.treebank, **options)


def _run_hf(args) -> int:
    cfg = hf_config(args)
    require_extra("hf", ["transformers"] + ([] if args.no_onnx else ["onnxruntime", "onnx"]))
    from ..bench.hf import format_report, run

    report = run(cfg)
    _show(format_report(report), report, args.json)
    return 0


# -- serve ---------------------------------------------------------------------------------

def _add_serve(bsub) -> None:
    p = bsub.add_parser(
        "serve",
        help="load test of the explorer's POST /api/tag on loopback",
        description=(
            "Start `attnlab serve` for MODEL on 127.0.0.1 twice, batching concurrent requests (--max-batch 32) "
            "and tagging them one at a time (--max-batch 1); send CLIENTS concurrent clients x REQUESTS "
            "requests to POST /api/tag of each, alternating, REPEAT times; print errors, p50/p90/p99 latency "
            "and throughput (medians over the repetitions) and their ratios. Exit status 1 if any request "
            "failed. Also times the model alone (no HTTP) on the same sentences."
        ),
    )
    p.add_argument("--model", required=True,
                   help="a shipped model's name (e.g. en) or the model directory of an attention tagger")
    p.add_argument("--clients", type=int_range(1, MAX_CLIENTS), default=20, help="concurrent clients (default 20)")
    p.add_argument("--requests", type=positive_int, default=100, help="requests per client (default 100)")
    p.add_argument("--repeat", type=positive_int, default=3, help="repetitions of each variant, alternating (default 3)")
    p.add_argument("--url", default=None, help="only load a server already running at this loopback URL")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads of the servers and of the model-alone timing (default 1)")
    p.add_argument("--json", type=output_path, default=None, metavar="FILE", help="also write the figures to this JSON file")
    p.set_defaults(func=_run_serve)


def _run_serve(args) -> int:
    from ..api import resolve_model
    from ..bench.serve_load import any_errors, check_loopback, compare_servers, format_result

    if args.url:
        check_loopback(args.url)
    args.model = resolve_model(args.model)
    result = compare_servers(args.model, clients=args.clients, requests=args.requests, repeat=args.repeat,
                             url=args.url, threads=args.threads)
    _show(format_result(result), result, args.json)
    return 1 if any_errors(result) else 0


# -- treebanks -----------------------------------------------------------------------------

def _add_treebanks(bsub) -> None:
    p = bsub.add_parser(
        "treebanks",
        help="train, score and tag every treebank of a directory; table against UDPipe 1.2",
        description=(
            "For each treebank directory under --data (one *train/dev/test.conllu each): the default "
            "`attnlab train` with each --seed, `attnlab eval --json` on the test file (UPOS, XPOS, UFeats, AllTags, "
            "Lemmas), `attnlab tag` on the test file checked to change only the predicted columns; prints a "
            "Markdown table against UDPipe 1.2's published gold-tokenization scores; then, for models with a "
            "segmenter, `attnlab eval --from-text --json` (the whole pipeline from the test file's raw text) and a "
            "second table against UDPipe 1.2's raw-text scores. Runs already in --out are scored again, not retrained."
        ),
    )
    p.add_argument("--data", type=Path, default=None, help="directory of treebank directories (default: $ATTNLAB_DATA)")
    p.add_argument("--out", type=Path, required=True, help="one model directory per treebank goes here")
    p.add_argument("--only", nargs="+", metavar="NAME", help="just these treebanks (directory names)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed, nargs="+", default=None, metavar="S",
                       help="training seeds, one run per treebank and seed (default 1)")
    seeds.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                       help="seeds 1 to N; with several seeds each run goes to --out/NAME/seed-S and every cell is "
                            "the mean over the seeds followed by the lowest and highest value")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads for every step (default 2)")
    p.add_argument("--json", type=output_path, default=None, metavar="FILE",
                   help="also write the figures to this JSON file (every run, and per treebank the mean, lowest, "
                        "highest and standard deviation over seeds)")
    p.add_argument("--train-arg", action="append", default=[], metavar="ARG",
                   help="pass ARG to every `attnlab train` (repeat it; e.g. --train-arg=--max-minutes=8); the "
                        "default is the plain command")
    p.set_defaults(func=_run_treebanks)


def _run_treebanks(args) -> int:
    import os

    from ..bench.treebanks import main, raw_table, summarize, table

    data = args.data or (Path(os.environ["ATTNLAB_DATA"]) if os.environ.get("ATTNLAB_DATA") else None)
    if data is None or not data.is_dir():
        raise UserError(f"--data {data}: no such directory (give the directory that holds the treebank directories)")
    seeds = list(range(1, args.seeds + 1)) if args.seeds else (args.seed or [1])
    try:
        results = main(data, args.out, only=args.only, seeds=seeds, threads=args.threads,
                       train_args=tuple(args.train_arg))
    except (RuntimeError, ValueError) as exc:
        raise UserError(str(exc)) from None
    _show(table(results) + "\n\nfrom raw text (CoNLL 2018 shared task F1):\n\n" + raw_table(results),
          {"results": results, "summary": summarize(results)}, args.json)
    return 0 if all(r["only_predicted_columns_changed"] for r in results) else 1


# -- tag -------------------------------------------------------------------------------------

def _add_tag(bsub) -> None:
    p = bsub.add_parser(
        "tag",
        help="attnlab tag end to end: words/s from CoNLL-U and raw text, 1 process vs workers, peak memory",
        description=(
            "Run `attnlab tag FILE -o /dev/null --stats` in a new process per run (startup and model loading "
            "counted) on a treebank's training file, as CoNLL-U and as raw text, with one process (1 and 2 torch "
            "threads) and with --workers; interleaved rounds, medians of words/s and their ratios. Then the peak "
            "resident memory of the process tree while tagging raw text of --memory-mb MB and of 1 MB. The Dask "
            "cases run when distributed is installed. With spaCy installed (pip install 'spacy>=3.8,<3.9'; not a "
            "dependency of attnlab), its CNN pipeline (tok2vec, tagger, morphologizer, trainable_lemmatizer) is "
            "trained on the same treebank for --spacy-steps steps (kept in $ATTNLAB_CACHE/bench-spacy, default "
            "~/.cache/attnlab) and nlp.pipe with n_process 1 and --workers is timed the same way, over the same raw "
            "text and CoNLL-U words, with the best attnlab case over spaCy's best. The report says what was not run."
        ),
    )
    p.add_argument("--model", default="en", help="a shipped model's name or a model directory (default en)")
    p.add_argument("--treebank", type=Path, required=True,
                   help="treebank directory whose *train.conllu is tagged (e.g. $ATTNLAB_DATA/ud-english-ewt)")
    p.add_argument("--repeat", type=positive_int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--workers", type=int_range(2), default=2, help="processes of the --workers cases (default 2)")
    p.add_argument("--memory-mb", type=int_range(0), default=100,
                   help="size of the raw text of the memory probe, beside 1 MB (default 100; 0: no memory probe)")
    p.add_argument("--only", nargs="+", default=[], metavar="TEXT",
                   help="just the cases whose name holds TEXT (e.g. spaCy, text)")
    p.add_argument("--spacy-steps", type=positive_int, default=1000, metavar="N",
                   help="training steps of the spaCy pipeline, trained once per treebank and N (default 1000)")
    p.add_argument("--json", type=output_path, default=None, metavar="FILE", help="also write the figures to this JSON file")
    p.set_defaults(func=_run_tag)


def _run_tag(args) -> int:
    from ..api import resolve_model
    from ..bench.tag import TagBenchConfig, format_report, run
    from ..data.treebank import find_split

    resolve_model(args.model)
    find_split(args.treebank, "train")
    try:
        report = run(TagBenchConfig(model=args.model, treebank=args.treebank, repeat=args.repeat,
                                    memory_mb=args.memory_mb, cases=tuple(args.only), workers=args.workers,
                                    spacy_steps=args.spacy_steps))
    except RuntimeError as exc:  # a timed command or spaCy's training failed
        raise UserError(str(exc)) from None
    _show(format_report(report), report, args.json)
    return 0


# -- explorer --------------------------------------------------------------------------------

def _add_explorer(bsub) -> None:
    p = bsub.add_parser(
        "explorer",
        help="the explorer in headless Chromium: seconds to draw each view, scroll and text size",
        description=(
            "Serve the explorer for MODEL on loopback and open it in Debian's headless chromium (selenium and "
            "/usr/bin/chromedriver): for each sentence length and window width, each round loads the page and "
            "switches to every view (head, model, steps, compare, whatif, why), timing the click to the frame "
            "after the view is drawn; prints medians against the target (<= 1.5 s at 128 words), whether the "
            "page scrolls sideways and its smallest text."
        ),
    )
    p.add_argument("--model", default="en", help="a shipped model's name or a model directory (default en)")
    p.add_argument("--words", type=int_range(2, 128), nargs="+", default=[5, 40, 128], metavar="N",
                   help="sentence lengths in words (default 5 40 128)")
    p.add_argument("--widths", type=int_range(320, 4000), nargs="+", default=[1280, 420], metavar="PX",
                   help="window widths in px (default 1280 420)")
    p.add_argument("--rounds", type=positive_int, default=3, help="page loads per length and width (default 3)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads of the server (default 1)")
    p.add_argument("--json", type=output_path, default=None, metavar="FILE", help="also write the figures to this JSON file")
    p.add_argument("--screenshots", type=Path, default=None, metavar="DIR",
                   help="instead of timing, save the README's pictures of the page to DIR (docs/explorer)")
    p.set_defaults(func=_run_explorer)


def explorer_config(args):
    """The ``ExplorerBenchConfig`` of `attnlab bench explorer` with these options."""
    from ..bench.explorer import ExplorerBenchConfig

    return ExplorerBenchConfig(model=args.model, words=tuple(dict.fromkeys(args.words)),
                               widths=tuple(dict.fromkeys(args.widths)), rounds=args.rounds, threads=args.threads)


def _run_explorer(args) -> int:
    from ..api import resolve_model
    from ..bench.explorer import format_report, missing_browser, run, screenshots

    missing = missing_browser()
    if missing:
        raise UserError(f"bench explorer needs a browser: {missing}")
    resolve_model(args.model)
    if args.screenshots:
        screenshots(args.screenshots, args.model)
        return 0
    cfg = explorer_config(args)
    print(f"attnlab bench explorer: {', '.join(map(str, cfg.words))} words at {', '.join(map(str, cfg.widths))} px ...", flush=True)
    report = run(cfg, log=lambda s: print(s, flush=True))
    _show(format_report(report), report, args.json)
    return 0


# -- calibrate -------------------------------------------------------------------------------

def _add_calibrate(bsub) -> None:
    p = bsub.add_parser(
        "calibrate",
        help="time the native attention kernel against the bucketed SDPA path; keep the faster per bucket",
        description=(
            "For every (mode, longest-sequence bucket, head width) entry, run packed attention through the native "
            "kernel and through the bucketed path over torch SDPA on a representative batch, interleaved, medians; "
            "choose the faster (the fixed rule unless the other is 5% faster) and keep the table beside the kernel "
            "build in $ATTNLAB_CACHE, where impl='auto' reads it. Prints each entry's times, ratio, choice and why."
        ),
    )
    p.add_argument("--show", action="store_true", help="print the cached table of this machine without measuring")
    p.add_argument("--head-dim", type=positive_int, nargs="+", default=[64], metavar="d", help="head widths d (default 64)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="dtype (default float32)")
    p.add_argument("--modes", choices=("inference", "training"), nargs="+", default=["inference", "training"],
                   help="inference, training (forward + backward) or both (the default)")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[], metavar="N",
                   help="also time one sequence of each length N the same way (printed, not kept)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's; part of the table's key)")
    p.add_argument("--json", type=output_path, default=None, metavar="FILE", help="also write the table as JSON")
    p.set_defaults(func=_run_calibrate)


def _run_calibrate(args) -> int:
    import torch

    from ..attention.varlen import timed_attention
    from ..kernels import calibrate, native

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    parts = calibrate.key_parts(dtype)
    report: dict = {"key": parts, "file": str(calibrate.cache_path(parts)), "entries": {}, "sizes": {}}
    if args.show:
        report["entries"] = dict(sorted(calibrate.table(dtype).items(), key=lambda kv: calibrate.entry_order(kv[0])))
        if not report["entries"]:
            print(f"no calibration kept for this machine and key ({report['file']}): run `attnlab bench calibrate`")
            return 0
    else:
        if not native.available():
            raise UserError(f"the native kernels are unavailable ({native.unavailable_reason()}): nothing to calibrate")
        print(f"attnlab bench calibrate: {', '.join(f'{k} {v}' for k, v in parts.items())} ...", flush=True)
        entries = calibrate.all_entries(tuple(args.head_dim), tuple(args.modes))
        report["entries"] = calibrate.calibrate(entries, dtype, attention=timed_attention,
                                                log_row=lambda e, row: print(_row(e, row), flush=True))
        for n in args.sizes:
            for mode in args.modes:
                for d in args.head_dim:
                    name = f"{mode} single N={n} d={d}"
                    row = calibrate.measure_batch(mode, [n], 1, d, dtype=dtype, attention=timed_attention)
                    row["table"] = calibrate.table(dtype).get(calibrate.entry_key(mode, n, d), {}).get("choice")
                    report["sizes"][name] = row
                    print(_row(name, row), flush=True)
    lines = [f"key: {', '.join(f'{k} {v}' for k, v in parts.items())}", f"file: {report['file']}", "",
             "| entry | batch | native ms | buckets ms | buckets / native | chosen | why |", "|---|---|---:|---:|---:|---|---|"]
    lines += [_row(e, row, table=True) for e, row in report["entries"].items()]
    if report["sizes"]:
        lines += ["", "single sequences (not kept; 'chosen' is what the table above picks for them):", "",
                  "| case | batch | native ms | buckets ms | buckets / native | chosen | faster here |",
                  "|---|---|---:|---:|---:|---|---|"]
        lines += [_row(name, {**row, "why": row["choice"], "choice": row["table"]}, table=True)
                  for name, row in report["sizes"].items()]
    _show("\n".join(lines), report, args.json)
    return 0


def _row(entry: str, row: dict, table: bool = False) -> str:
    cells = [entry, row["shape"], f"{row['native_ms']:.3f}", f"{row['buckets_ms']:.3f}", f"{row['ratio']:.2f}",
             str(row["choice"]), row["why"]]
    return "| " + " | ".join(cells) + " |" if table else "  " + ", ".join(cells)
