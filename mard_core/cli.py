"""The `mard` command line. Errors a user can fix are printed as one line, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from mard_core.errors import InputError, MardError, readable_file
from mard_core.runtime import data_root

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="MARD: mechanism-level drug-drug interaction prediction from DrugBank.",
)
err = Console(stderr=True)

# Input files are checked by the commands (readable_file: one line, exit 1), not by typer (readable=False):
# its check answers an unreadable file with a usage box and exit 2.
RootOpt = Annotated[Path | None, typer.Option("--root", help="Data root (default $MARD_ROOT or ./runs).")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", readable=False, help="Pipeline config YAML.")
]


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output .xml or .xml.zip")],
    drugs: Annotated[
        int, typer.Option("--drugs", min=1, help="Synthetic drugs (the real-drug fixture is added).")
    ] = 400,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    previous: Annotated[
        Path | None,
        typer.Option(
            "--previous",
            readable=False,
            help="Write the next release of this synthetic release's world (read from its .world.json).",
        ),
    ] = None,
    exported_on: Annotated[
        str | None,
        typer.Option("--exported-on", help="YYYY-MM-DD (default 2026-04-02; with --previous, 91 days later)"),
    ] = None,
) -> None:
    """Write a synthetic DrugBank 5.1 full-database release (the embedded demo default), or with --previous
    the next release of the same world; its world sidecar (oracle ceiling, parameters) goes beside it."""
    from mard_core import synth as core

    if previous is not None:
        readable_file(previous)
        truth = core.evolve_release(previous, out, seed, exported_on=exported_on)
    else:
        truth = core.write_release(out, drugs, seed, exported_on=exported_on or core.DEFAULT_EXPORTED_ON)
    counts = {k: v for k, v in truth.to_dict().items() if isinstance(v, int)}
    typer.echo(json.dumps({"out": str(out), **counts, "ceiling": truth.world["ceiling"]}))


@app.command()
def verify(
    source: Annotated[Path, typer.Argument(readable=False, help="DrugBank .xml or .zip")],
    version: Annotated[str | None, typer.Option("--version", help="Declared release, e.g. 5.1.13")] = None,
    add: Annotated[
        str | None, typer.Option("--add", help="Record this file's hash as release VERSION")
    ] = None,
    root: RootOpt = None,
) -> None:
    """Print the file's sha256 and whether it matches a known (or the declared) release."""
    from mard_core.releases import add_release, hash_cache, load_registry, user_registry
    from mard_core.releases import verify as check

    mine, cache = user_registry(data_root(root)), hash_cache(data_root(root))
    if add:
        result = check(source, None, load_registry(mine), cache)
        add_release(mine, add, result.sha256, result.size)
        typer.echo(f"recorded {add}: sha256={result.sha256} size={result.size} in {mine}")
        return
    result = check(source, version, load_registry(mine), cache)
    typer.echo(result.line())
    if not result.matched:
        raise typer.Exit(1)


@app.command()
def ingest(
    source: Annotated[
        Path, typer.Argument(readable=False, help="DrugBank full-database .xml or the .zip DrugBank ships")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output directory for the Parquet tables")],
    version: Annotated[str | None, typer.Option("--version", help="Declared release, e.g. 5.1.13")] = None,
    verify_hash: Annotated[
        bool, typer.Option("--verify", help="Refuse a file whose hash does not match")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing MARD output directory")] = False,
    root: RootOpt = None,
) -> None:
    """Stream a DrugBank release into Parquet tables (drugs, interactions, drug_proteins, pathways)."""
    from mard_core import ingest as core
    from mard_core.ingest_config import IngestConfig
    from mard_core.releases import file_sha256, hash_cache, load_registry, require_verified, user_registry
    from mard_core.releases import verify as check
    from mard_core.stage import materialize, read_manifest

    cache = hash_cache(data_root(root))
    readable_file(source)
    if verify_hash:
        registry = load_registry(user_registry(data_root(root)))
        require_verified(check(source, version, registry, cache), registry)
    digest = file_sha256(source, cache)
    existing = read_manifest(out) if out.exists() else None
    if out.exists() and existing is None:
        raise InputError(f"{out}: exists and is not a MARD ingest output; refusing to overwrite it")
    if (
        existing
        and existing["source"].get("sha256") == digest
        and existing["parser_version"] == core.PARSER_VERSION
        and not force
    ):
        typer.echo(f"{out}: already holds this release ({digest[:12]}); nothing to do")
        return
    if existing and existing["source"].get("sha256") != digest and not force:
        raise InputError(
            f"{out}: holds another release ({existing['source'].get('sha256', '')[:12]}); "
            "use --force to replace it"
        )
    size = source.stat().st_size
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        job = bar.add_task(f"ingest {source.name}", total=size or None)

        def build(tmp: Path) -> dict:
            fields = core.ingest(source, tmp, IngestConfig(), progress=lambda n: bar.update(job, completed=n))
            fields["source"]["sha256"] = digest
            return fields

        materialize(out, build, {"stage": "ingest", "version": core.PARSER_VERSION})
    typer.echo(json.dumps({k: v for k, v in (read_manifest(out) or {}).items() if k != "files"}, indent=2))


@app.command()
def classify(
    sentence: Annotated[str | None, typer.Argument(help="A DrugBank interaction sentence")] = None,
    a: Annotated[str | None, typer.Option("--a", help="Drug A's name")] = None,
    b: Annotated[str | None, typer.Option("--b", help="Drug B's name")] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", readable=False, help='JSONL of {"a", "b", "sentence"}')
    ] = None,
) -> None:
    """Label a sentence (or every line of a JSONL file) as Family/Subtype/Direction/Modality, as JSON."""
    from mard_core.labeling import classify_records

    if input_file is not None:
        readable_file(input_file)

        def records():
            with open(input_file, encoding="utf-8") as f:
                try:
                    for n, line in enumerate(f, 1):
                        if line.strip():
                            try:
                                yield json.loads(line)
                            except json.JSONDecodeError as exc:
                                raise InputError(f"{input_file}:{n}: not valid JSON: {exc.msg}") from None
                except UnicodeDecodeError:
                    raise InputError(f"{input_file}: not UTF-8 text; expected JSON lines") from None

        for result in classify_records(records()):
            typer.echo(json.dumps(result, ensure_ascii=False))
        return
    if sentence is None or a is None or b is None:
        raise InputError("classify needs --a NAME --b NAME and a SENTENCE, or --input FILE.jsonl")
    typer.echo(
        json.dumps(next(classify_records([{"a": a, "b": b, "sentence": sentence}])), ensure_ascii=False)
    )


StageOpts = {
    "from_stage": typer.Option("--from", help="Rebuild this stage and every stage after it"),
    "only": typer.Option("--only", help="Rebuild this stage and stop after it"),
    "until": typer.Option("--until", help="Run what this stage needs, then stop after it"),
    "force": typer.Option("--force", help="Rebuild this stage even if complete"),
}


@app.command()
def run(
    config: ConfigOpt = None,
    root: RootOpt = None,
    from_stage: Annotated[str | None, StageOpts["from_stage"]] = None,
    only: Annotated[str | None, StageOpts["only"]] = None,
    until: Annotated[str | None, StageOpts["until"]] = None,
    force: Annotated[list[str] | None, StageOpts["force"]] = None,
) -> None:
    """Run the pipeline end to end on the configured release (default: the embedded demo release).

    The stages run in a child process that SIGINT/SIGTERM stop within seconds; a temporary Prefect server
    (unless PREFECT_API_URL is set) lives exactly as long as this command.
    """
    from mard_core.config import load_config
    from mard_core.runtime import configure_services, prefect_server, supervise
    from mard_core.stages import make_plan

    r = data_root(root)
    plan = make_plan(from_stage, only, until, force or ())
    load_config(config)  # fail fast on a bad config or a missing release, before the orchestrator starts
    configure_services(r)
    args = ["--root", str(r), *(["--config", str(config)] if config else [])]
    args += [a for s in sorted(plan.force) for a in ("--force", s)] + (
        ["--until", plan.until] if plan.until else []
    )
    with prefect_server(r):
        code = supervise([sys.executable, "-m", "mard_core.cli", "run-stages", *args])
    if code:
        raise typer.Exit(code)


@app.command("run-stages", hidden=True)
def run_stages(
    config: ConfigOpt = None,
    root: RootOpt = None,
    until: Annotated[str | None, StageOpts["until"]] = None,
    force: Annotated[list[str] | None, StageOpts["force"]] = None,
) -> None:
    """The pipeline flow in this process (what `mard run` supervises); prints each stage's output as JSON."""
    from mard_core.runtime import configure_services

    r = data_root(root)
    configure_services(r)
    from flows.console import headline, quiet

    quiet(r)  # before the flow's imports: stage progress on the console, library output in run.log
    from flows.pipeline import pipeline

    outputs = pipeline(root=str(r), config=str(config) if config else None, force=force or [], until=until)
    typer.echo(json.dumps(outputs, indent=2))
    err.print(headline(outputs), highlight=False, soft_wrap=True)


@app.command()
def predict(
    drug_a: Annotated[str | None, typer.Argument(help="Drug A: DrugBank id or name")] = None,
    drug_b: Annotated[str | None, typer.Argument(help="Drug B: DrugBank id or name")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="A merged student directory, or models:/NAME@ALIAS or models:/NAME/VERSION from the MLflow "
            "registry (default: the registry's champion, else the newest completed student)",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline", help="Answer with this baseline instead of a student model: knowledge_rules"
        ),
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", readable=False, help="CSV/TSV/JSONL file of drug pairs")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Retrieval index of this split strategy (default: the one the student learned from)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    root: RootOpt = None,
) -> None:
    """Predict the mechanism, direction and a cited reasoning chain for drug pairs; the output names the
    model."""
    import polars as pl

    from mard_core.predict import (
        DrugLookup,
        format_json,
        format_text,
        load_calibrator,
        load_system,
        predict_pairs,
        read_pairs,
    )
    from mard_core.retrieval import RetrievalIndex
    from mard_core.students import choose

    if input_file is not None:
        readable_file(input_file)  # before any model lookup
    elif not (drug_a and drug_b):
        raise InputError("predict needs DRUG_A DRUG_B, or --input FILE")
    choice = choose(data_root(root), model, baseline, split)
    drugs = DrugLookup(pl.read_parquet(choice.ingest / "drugs.parquet"))
    if input_file is not None:
        pairs = read_pairs(input_file, drugs)
    else:
        assert drug_a and drug_b  # checked above
        pairs = [(drug_a, drug_b)]
    weights = choice.weights()
    system = load_system(model=str(weights) if weights else None, baseline=choice.baseline)  # once per batch
    try:
        results = predict_pairs(
            pairs,
            system,
            RetrievalIndex.load(choice.index),
            drugs,
            load_calibrator(choice.calibration) if choice.calibration else None,
            choice.summary(),
        )
    finally:
        system.close()
    if as_json:
        typer.echo(format_json(results), nl=False)  # JSON lines, each already ends with a newline
    else:
        typer.echo("\n\n".join(format_text(res) for res in results))


@app.command()
def status(root: RootOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every stage of the pipeline, in order, with its state in the latest run, duration and output path."""
    from rich.table import Table

    from mard_core import runlog
    from mard_core.stages import NAMES

    record = runlog.latest(data_root(root))
    if record is None:
        raise InputError(f"{data_root(root)}: no pipeline run recorded yet (run `mard run`)")
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    table = Table(title=f"run {record['run_id']}")
    for col in ("stage", "state", "duration (s)", "output"):
        table.add_column(col)
    recorded = record["stages"]
    extra = sorted(
        (s for s in recorded if s not in NAMES), key=lambda s: recorded[s]["seq"]
    )  # eval-* systems
    for stage in (*NAMES, *extra):
        entry = recorded.get(stage, {"state": "not run"})
        duration = entry.get("duration_s")
        table.add_row(
            stage, entry["state"], "" if duration is None else f"{duration:.1f}", entry.get("out", "")
        )
    Console().print(table)


def _latest_tables(root: Path | None, split: str) -> tuple[Path, Path]:
    """The ingest output and the index output (one index per split) of the newest complete retrieval index."""
    from mard_core.students import newest_data

    ingest_dir, index_dir, _ = newest_data(data_root(root), split)
    return ingest_dir, index_dir.parent


@app.command()
def evidence(
    drug_a: Annotated[str, typer.Argument(help="Drug A: DrugBank id or name")],
    drug_b: Annotated[str, typer.Argument(help="Drug B: DrugBank id or name")],
    split: Annotated[
        str, typer.Option("--split", help="Retrieval index of this split strategy")
    ] = "cold_drug",
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    root: RootOpt = None,
) -> None:
    """Print the numbered evidence the student sees for the ordered pair on a split (as the evaluation
    retrieves it)."""
    from mard_core.audit import Auditor, format_evidence

    record = Auditor.load(*_latest_tables(root, split), split).evidence(drug_a, drug_b)
    typer.echo(json.dumps(record, ensure_ascii=False) if as_json else format_evidence(record), nl=as_json)


@app.command()
def audit(
    input_file: Annotated[Path, typer.Option("--input", help='JSONL of {"drug_a", "drug_b", "text"}')],
    split: Annotated[
        str, typer.Option("--split", help="Retrieval index of this split strategy")
    ] = "cold_drug",
    root: RootOpt = None,
) -> None:
    """Score reasoning chains against their own answers (MFS, each step's verdict and reason), one JSON line
    per chain. A bad line is reported on stderr as FILE:LINE and skipped; the exit code is then 1."""
    from rich.markup import escape

    from mard_core.audit import Auditor

    bad = 0
    for record, error in Auditor.load(*_latest_tables(root, split), split).audit_file(input_file):
        if error is not None:
            bad += 1
            err.print(f"[red]error:[/red] {escape(error)}", highlight=False, soft_wrap=True)
        else:
            typer.echo(json.dumps(record, ensure_ascii=False))
    if bad:
        raise typer.Exit(1)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(1)


def _disk_full(exc: BaseException | None) -> OSError | None:
    """The ENOSPC error ``exc`` is or was raised from, if any."""
    while exc is not None and not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        exc = exc.__cause__ or exc.__context__
    return exc


def main() -> None:
    """Console entry point: MARD errors, a full disk and running out of memory become one line on stderr and
    exit code 1; any other exception is a bug and keeps its traceback."""
    try:
        app()
    except MardError as exc:
        _fail(str(exc))
    except MemoryError:
        _fail(
            "out of memory; free memory or use a machine with more "
            "(for `mard predict`, a smaller --input file)"
        )
    except Exception as exc:
        full = _disk_full(exc)
        if full is None:
            raise
        try:
            sys.stdout.flush()
        except OSError:  # stdout is what is full: drop what it still buffers, or exiting prints a traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        where = f"{full.filename}: " if full.filename else ""
        _fail(
            f"{where}no space left on device; free disk space (or use another --root / --out) and run again"
        )


if __name__ == "__main__":
    main()
