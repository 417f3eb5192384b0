"""The `mard` command line. Errors a user can fix are printed as one line, never a traceback."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from mard_core.errors import InputError, MardError
from mard_core.runtime import data_root

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="MARD: mechanism-level drug-drug interaction prediction from DrugBank.")
err = Console(stderr=True)

RootOpt = Annotated[Path | None, typer.Option("--root", help="Data root (default $MARD_ROOT or ./runs).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Pipeline config YAML.")]


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output .xml or .xml.zip")],
    drugs: Annotated[int, typer.Option("--drugs", min=1, help="Synthetic drugs (the real-drug fixture is added).")] = 400,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write a synthetic DrugBank 5.1 full-database release (the embedded demo default)."""
    from mard_core.synth import write_release

    truth = write_release(out, drugs, seed)
    typer.echo(json.dumps({"out": str(out), **{k: v for k, v in truth.to_dict().items() if isinstance(v, int)}}))


@app.command()
def verify(
    source: Annotated[Path, typer.Argument(help="DrugBank .xml or .zip")],
    version: Annotated[str | None, typer.Option("--version", help="Declared release, e.g. 5.1.13")] = None,
    add: Annotated[str | None, typer.Option("--add", help="Record this file's hash as release VERSION")] = None,
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
    source: Annotated[Path, typer.Argument(help="DrugBank full-database .xml or the .zip DrugBank ships")],
    out: Annotated[Path, typer.Option("--out", help="Output directory for the Parquet tables")],
    version: Annotated[str | None, typer.Option("--version", help="Declared release, e.g. 5.1.13")] = None,
    verify_hash: Annotated[bool, typer.Option("--verify", help="Refuse a file whose hash does not match")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing MARD output directory")] = False,
    root: RootOpt = None,
) -> None:
    """Stream a DrugBank release into Parquet tables (drugs, interactions, drug_proteins, pathways)."""
    from mard_core import ingest as core
    from mard_core.releases import file_sha256, hash_cache, load_registry, require_verified, user_registry
    from mard_core.releases import verify as check
    from mard_core.stage import materialize, read_manifest

    cache = hash_cache(data_root(root))
    if verify_hash:
        registry = load_registry(user_registry(data_root(root)))
        require_verified(check(source, version, registry, cache), registry)
    digest = file_sha256(source, cache) if source.is_file() else ""
    existing = read_manifest(out) if out.exists() else None
    if out.exists() and existing is None:
        raise InputError(f"{out}: exists and is not a MARD ingest output; refusing to overwrite it")
    if existing and existing["source"].get("sha256") == digest and existing["parser_version"] == core.PARSER_VERSION and not force:
        typer.echo(f"{out}: already holds this release ({digest[:12]}); nothing to do")
        return
    if existing and existing["source"].get("sha256") != digest and not force:
        raise InputError(f"{out}: holds another release ({existing['source'].get('sha256', '')[:12]}); use --force to replace it")
    size = source.stat().st_size if source.is_file() else 0
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        job = bar.add_task(f"ingest {source.name}", total=size or None)

        def build(tmp: Path) -> dict:
            fields = core.ingest(source, tmp, core.IngestConfig(), progress=lambda n: bar.update(job, completed=n))
            fields["source"]["sha256"] = digest
            return fields

        materialize(out, build, {"stage": "ingest", "version": core.PARSER_VERSION})
    typer.echo(json.dumps({k: v for k, v in (read_manifest(out) or {}).items() if k != "files"}, indent=2))


@app.command()
def classify(
    sentence: Annotated[str | None, typer.Argument(help="A DrugBank interaction sentence")] = None,
    a: Annotated[str | None, typer.Option("--a", help="Drug A's name")] = None,
    b: Annotated[str | None, typer.Option("--b", help="Drug B's name")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help='JSONL of {"a", "b", "sentence"}')] = None,
) -> None:
    """Label a sentence (or every line of a JSONL file) as Family/Subtype/Direction/Modality, as JSON."""
    from mard_core.labeling import classify_records

    if input_file is not None:
        if not input_file.is_file():
            raise InputError(f"{input_file}: no such file")

        def records():
            with open(input_file, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise InputError(f"{input_file}:{n}: not valid JSON: {exc.msg}") from None

        for result in classify_records(records()):
            typer.echo(json.dumps(result, ensure_ascii=False))
        return
    if sentence is None or a is None or b is None:
        raise InputError("classify needs --a NAME --b NAME and a SENTENCE, or --input FILE.jsonl")
    typer.echo(json.dumps(next(classify_records([{"a": a, "b": b, "sentence": sentence}])), ensure_ascii=False))


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

    The stages run in a child process that SIGINT/SIGTERM stop within seconds; a temporary Prefect server (unless
    PREFECT_API_URL is set) lives exactly as long as this command.
    """
    from mard_core.config import load_config
    from mard_core.runtime import configure_services, prefect_server, supervise
    from mard_core.stages import make_plan

    r = data_root(root)
    plan = make_plan(from_stage, only, until, force or ())
    cfg = load_config(config)  # fail fast on a bad config or a missing release, before the orchestrator starts
    if cfg.release.source and not Path(cfg.release.source).is_file():
        raise InputError(f"{cfg.release.source}: no such file (release.source in {config})")
    configure_services(r)
    args = ["--root", str(r), *(["--config", str(config)] if config else [])]
    args += [a for s in sorted(plan.force) for a in ("--force", s)] + (["--until", plan.until] if plan.until else [])
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


def _latest_output(root: Path, stage: str) -> Path | None:
    from mard_core import runlog

    record = runlog.latest(root) or {"stages": {}}
    out = record["stages"].get(stage, {}).get("out")
    return Path(out) if out and Path(out).is_dir() else None


@app.command()
def predict(
    drug_a: Annotated[str | None, typer.Argument(help="Drug A: DrugBank id or name")] = None,
    drug_b: Annotated[str | None, typer.Argument(help="Drug B: DrugBank id or name")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Student model directory (default: the latest run's)")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help="CSV/TSV/JSONL file of drug pairs")] = None,
    split: Annotated[str, typer.Option("--split", help="Retrieval index of this split strategy")] = "cold_drug",
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    root: RootOpt = None,
) -> None:
    """Predict the mechanism, direction and a cited reasoning chain for drug pairs."""
    import polars as pl

    from mard_core.evaluate import result_stem
    from mard_core.predict import (
        format_json,
        format_text,
        load_calibrator,
        load_system,
        predict_pairs,
        read_pairs,
    )
    from mard_core.retrieval import RetrievalIndex
    from mard_core.training import merged_dir

    r = data_root(root)
    ingest_dir, index_dir = _latest_output(r, "ingest"), _latest_output(r, "index")
    if ingest_dir is None or index_dir is None:
        raise InputError(f"{r}: no ingested release with a retrieval index; run `mard run` first (or pass --root)")
    if input_file is not None:
        pairs = read_pairs(input_file)
    elif drug_a and drug_b:
        pairs = [(drug_a, drug_b)]
    else:
        raise InputError("predict needs DRUG_A DRUG_B, or --input FILE")
    dpo_dir = _latest_output(r, "dpo")
    student = model or (merged_dir(dpo_dir) if dpo_dir else None)
    system, note = load_system(str(student) if student else None)
    evaluate_dir = _latest_output(r, "evaluate")
    stem = result_stem({"system": "student:mard", "strategy": split})
    calibration = evaluate_dir / "calibration" / f"{stem}.parquet" if evaluate_dir and model is None else None
    try:
        results = predict_pairs(pairs, system, RetrievalIndex.load(index_dir / split),
                                pl.read_parquet(ingest_dir / "drugs.parquet"),
                                load_calibrator(calibration) if calibration and calibration.is_file() else None, note)
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
    extra = sorted((s for s in recorded if s not in NAMES), key=lambda s: recorded[s]["seq"])  # eval-* systems
    for stage in (*NAMES, *extra):
        entry = recorded.get(stage, {"state": "not run"})
        duration = entry.get("duration_s")
        table.add_row(stage, entry["state"], "" if duration is None else f"{duration:.1f}", entry.get("out", ""))
    Console().print(table)


def _latest_tables(root: Path | None) -> tuple[Path, Path]:
    """The latest run's ingest and index output directories under the data root."""
    r = data_root(root)
    ingest_dir, index_dir = _latest_output(r, "ingest"), _latest_output(r, "index")
    if ingest_dir is None or index_dir is None:
        raise InputError(f"{r}: no ingested release with a retrieval index; run `mard run` first (or pass --root)")
    return ingest_dir, index_dir


@app.command()
def evidence(
    drug_a: Annotated[str, typer.Argument(help="Drug A: DrugBank id or name")],
    drug_b: Annotated[str, typer.Argument(help="Drug B: DrugBank id or name")],
    split: Annotated[str, typer.Option("--split", help="Retrieval index of this split strategy")] = "cold_drug",
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    root: RootOpt = None,
) -> None:
    """Print the numbered evidence the student sees for the ordered pair on a split (as the evaluation retrieves it)."""
    from mard_core.audit import Auditor, format_evidence

    record = Auditor.load(*_latest_tables(root), split).evidence(drug_a, drug_b)
    typer.echo(json.dumps(record, ensure_ascii=False) if as_json else format_evidence(record), nl=as_json)


@app.command()
def audit(
    input_file: Annotated[Path, typer.Option("--input", help='JSONL of {"drug_a", "drug_b", "text"}')],
    split: Annotated[str, typer.Option("--split", help="Retrieval index of this split strategy")] = "cold_drug",
    root: RootOpt = None,
) -> None:
    """Score reasoning chains against their own answers (MFS, each step's verdict and reason), one JSON line per
    chain. A bad line is reported on stderr as FILE:LINE and skipped; the exit code is then 1."""
    from rich.markup import escape

    from mard_core.audit import Auditor

    bad = 0
    for record, error in Auditor.load(*_latest_tables(root), split).audit_file(input_file):
        if error is not None:
            bad += 1
            err.print(f"[red]error:[/red] {escape(error)}", highlight=False, soft_wrap=True)
        else:
            typer.echo(json.dumps(record, ensure_ascii=False))
    if bad:
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: MARD errors become one line on stderr and exit code 1."""
    try:
        app()
    except MardError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
