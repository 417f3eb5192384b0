"""Which model answers `mard predict`, and the pipeline outputs it is used with. Nothing is chosen silently.

The model (:func:`choose`), first that applies:

1. the one asked for: a merged student directory (or the ``dpo/<key>`` output holding it), or a registered
   version ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION``;
2. a baseline, only when asked for by name (``--baseline knowledge_rules``);
3. the registry's champion (:class:`~mard_core.registry.RegisterConfig`: ``mard-student@champion``);
4. the newest completed student: the intact ``dpo/<key>`` output with the latest manifest ``created`` time
   (an unfinished or damaged output does not count, nor does which run started last).

With none of these, :func:`choose` fails and says what to run. A registered version's merged weights (artifact
``student-merged`` of its run) are downloaded once into ``<root>/.cache/models/<name>/v<version>-<run id>``.

The pipeline outputs (ingest, retrieval index, calibration) are those of the student's own pipeline run:

* a student stage output (``dpo``; a registered version names its output by the ``dpo_key`` tag) was evaluated
  by an ``eval-*`` output whose ``inputs`` name that output's key (for a registered version, the evaluation of
  its ``evaluate_key`` tag first): its ``ingest`` and ``index`` inputs, and its calibration rows for the split
  strategy asked (the student's own split by default: the ``split`` tag, else the evaluation's);
* a student never evaluated uses the ingest and index its training data came from (``prm`` → ``teachers``
  manifests) and is uncalibrated;
* a model directory that is no stage output, and a baseline, have no lineage: the newest complete retrieval
  index (and the ingest it was built from) gives the evidence, uncalibrated.

When a student's outputs are not under the data root (e.g. a champion trained on another machine), the choice
fails rather than pair the student with another run's data or calibration.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mard_core.errors import InputError, MardError, echo
from mard_core.predict import BASELINES
from mard_core.registry import MERGED_ARTIFACT, RegisterConfig
from mard_core.runtime import configure_services
from mard_core.stage import MANIFEST, read_manifest, verify_output
from mard_core.training import MERGED_DIR, merged_dir

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

STUDENT_STAGE = "dpo"
DEFAULT_SPLIT = "cold_drug"
MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))")
_ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # MLflow's "no such model, version or alias"


@dataclass(frozen=True)
class Choice:
    """The answering model and the pipeline outputs it is used with."""

    source: str  # directory | registry | champion | newest-completed | baseline
    description: str  # what the `Model:` line says
    model: (
        Path | None
    )  # the merged student directory (for a registered version: its cache); None for a baseline
    baseline: str | None
    ingest: Path
    index: Path  # the retrieval index of ``split``: index/<key>/<split>
    split: str
    calibration: Path | None
    identity: dict[str, str]  # path, student stage output, registered name/version/alias/uri
    run_id: str | None = None  # the MLflow run whose artifact holds a registered version's weights

    def weights(self) -> Path | None:
        """The merged student directory, downloaded first for a registered version not yet in the cache."""
        if self.run_id is not None and self.model is not None and not self.model.is_dir():
            _download(self.run_id, self.model, self.description)
        return self.model

    def summary(self) -> dict[str, Any]:
        """The ``model`` field of `mard predict`'s JSON output."""
        return {
            "source": self.source,
            "description": self.description,
            **self.identity,
            "split": self.split,
            "ingest": str(self.ingest),
            "index": str(self.index),
            "calibration": str(self.calibration) if self.calibration else None,
        }


def _outputs(root: Path, stage: str) -> list[tuple[Path, dict[str, Any]]]:
    """The finished outputs (manifest written) of ``stage`` (a glob: ``eval-*``), newest ``created`` first
    (the manifest's mtime breaks ties: ``created`` has whole seconds)."""
    found = [
        (out, m)
        for out in root.glob(f"{stage}/*")
        if out.is_dir() and not out.name.startswith(".") and (m := read_manifest(out)) is not None
    ]
    return sorted(
        found,
        key=lambda om: (str(om[1].get("created", "")), (om[0] / MANIFEST).stat().st_mtime_ns),
        reverse=True,
    )


def _manifest(root: Path, stage: str, key: str | None) -> dict[str, Any]:
    return (read_manifest(root / stage / key) if key else None) or {}


def _lineage(
    root: Path,
    stage: str,
    key: str | None,
    prm_key: str | None,
    split: str | None,
    what: str,
    preferred: frozenset[str] = frozenset(),
) -> tuple[Path, Path, str, Path | None]:
    """Ingest, index (of the split), split and calibration file of student output ``stage/key`` (module doc).
    ``preferred``: ``<eval stage>/<key>`` outputs to take first."""
    placeholder = "{" + stage.replace("-", "_") + "}"  # how an evaluated system names this student
    evals = sorted(
        (
            (out, m)
            for out, m in _outputs(root, "eval-*")
            if key
            and m.get("inputs", {}).get(stage) == key
            and m.get("config", {}).get("system", {}).get("model") == placeholder
        ),
        key=lambda om: f"{om[0].parent.name}/{om[0].name}" in preferred,
        reverse=True,
    )
    if evals:
        inputs, config = evals[0][1]["inputs"], evals[0][1]["config"]
        ingest_key, index_key, split = inputs.get("ingest"), inputs.get("index"), split or config.get("split")
    else:
        prm = _manifest(root, "prm", prm_key).get("inputs", {})
        teachers = _manifest(root, "teachers", prm.get("teachers"))
        ingest_key, index_key = prm.get("ingest"), teachers.get("inputs", {}).get("index")
        split = split or teachers.get("config", {}).get("split")
    if not (_manifest(root, "ingest", ingest_key) and _manifest(root, "index", index_key)):
        raise MardError(
            f"{what}: the ingest and retrieval index it was trained and evaluated with are not under "
            f"{root}; use the --root of the pipeline that built it"
        )
    split = split or DEFAULT_SPLIT
    calibration = next(
        (
            cal
            for out, m in evals
            if m["config"].get("strategy") == split
            for cal in sorted((out / "calibration").glob("*.parquet"))
        ),
        None,
    )
    return root / "ingest" / ingest_key, _strategy(root / "index" / index_key, split), split, calibration


def _strategy(index: Path, split: str) -> Path:
    if not (index / split).is_dir():
        built = sorted(p.name for p in index.iterdir() if p.is_dir())
        raise InputError(f"{index}: no retrieval index for split {echo(split)}; built: {', '.join(built)}")
    return index / split


def newest_data(root: Path, split: str | None) -> tuple[Path, Path, str]:
    """Ingest, index of the split, and split, of the newest complete retrieval index (no lineage known)."""
    for out, manifest in _outputs(root, "index"):
        ingest_key = manifest.get("inputs", {}).get("ingest")
        if _manifest(root, "ingest", ingest_key):
            split = split or DEFAULT_SPLIT
            return root / "ingest" / ingest_key, _strategy(out, split), split
    raise InputError(
        f"{root}: no ingested release with a retrieval index; run `mard run` first (or pass --root)"
    )


def _student_output(out: Path, source: str, description: str, split: str | None) -> Choice:
    manifest = read_manifest(out) or {}
    root, stage, key = out.parent.parent, out.parent.name, out.name
    ingest, index, split, calibration = _lineage(
        root, stage, key, manifest.get("inputs", {}).get("prm"), split, description
    )
    model = merged_dir(out)
    return Choice(
        source,
        description,
        model,
        None,
        ingest,
        index,
        split,
        calibration,
        {"path": str(model), "student": f"{stage}/{key}"},
    )


def _directory(root: Path, path: Path, split: str | None) -> Choice:
    path = path.resolve()
    if read_manifest(path) and (path / MERGED_DIR).is_dir():  # a student stage output given for its student
        path = merged_dir(path)
    if not (path / "config.json").is_file():
        raise InputError(
            f"{path}: not a model directory (no config.json); pass a merged student such as "
            "<root>/dpo/<key>/merged, or models:/NAME@ALIAS"
        )
    if path.name == MERGED_DIR and "prm" in (read_manifest(path.parent) or {}).get("inputs", {}):
        return _student_output(path.parent, "directory", f"{path} (--model)", split)
    ingest, index, split = newest_data(root, split)
    return Choice(
        "directory",
        f"{path} (--model; not a pipeline output: uncalibrated)",
        path,
        None,
        ingest,
        index,
        split,
        None,
        {"path": str(path)},
    )


def _newest_student(root: Path, split: str | None) -> Choice | None:
    for out, _ in _outputs(root, STUDENT_STAGE):
        if not verify_output(out):
            return _student_output(
                out, "newest-completed", f"{merged_dir(out)} (newest completed student)", split
            )
    return None


def _registry(root: Path) -> tuple[str, MlflowClient | None]:
    """The data root's MLflow tracking URI and its client; no client when the store is a SQLite file not yet
    created (nothing was ever registered there)."""
    configure_services(root)
    import mlflow

    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return uri, None
    return uri, mlflow.MlflowClient(uri)


def _version(client: MlflowClient, name: str, alias: str | None, version: str | None) -> ModelVersion | None:
    """The registered model version (by alias or number), or None when the registry has no such thing."""
    from mlflow.exceptions import MlflowException

    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        assert version is not None, "a version is named by an alias or a number"
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in _ABSENT:
            return None
        raise MardError(f"MLflow registry at {client.tracking_uri}: {str(exc).splitlines()[0]}") from None


def _registered(root: Path, version: ModelVersion, source: str, via: str, split: str | None) -> Choice:
    tags, alias = version.tags, via if source == "champion" else None
    description = f"{version.name} v{version.version} ({via})"
    evaluated = _manifest(root, "evaluate", tags.get("evaluate_key")).get("inputs", {})
    ingest, index, split, calibration = _lineage(
        root,
        STUDENT_STAGE,
        tags.get("dpo_key"),
        tags.get("input_prm"),
        split or tags.get("split"),
        description,
        frozenset(f"{stage}/{key}" for stage, key in evaluated.items()),
    )
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", version.name)
    model = root / ".cache" / "models" / safe / f"v{version.version}-{version.run_id}"
    uri = f"models:/{version.name}@{alias}" if alias else via
    identity = {
        "name": version.name,
        "version": str(version.version),
        **({"alias": alias} if alias else {}),
        "uri": uri,
        "path": str(model),
        "student": f"{STUDENT_STAGE}/{tags.get('dpo_key')}",
    }
    return Choice(
        source, description, model, None, ingest, index, split, calibration, identity, version.run_id
    )


def _download(run_id: str, into: Path, what: str) -> None:
    """Fetch the merged weights of ``run_id`` into ``into`` (through a temporary directory beside it, renamed
    into place: an interrupted download leaves no half model in the cache)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    into.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=into.parent) as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=MERGED_ARTIFACT, dst_path=tmp
            )
        except (MlflowException, OSError) as exc:
            raise MardError(
                f"{what}: cannot fetch its weights ({MERGED_ARTIFACT} of run {run_id}): "
                f"{str(exc).splitlines()[0]}"
            ) from None
        if not into.exists():
            os.replace(local, into)


def choose(
    root: Path,
    model: str | None = None,
    baseline: str | None = None,
    split: str | None = None,
    register: RegisterConfig | None = None,
) -> Choice:
    """The model that answers and its pipeline outputs under data root ``root`` (module doc); ``split``: the
    retrieval index's split strategy, by default the student's own; ``register``: which registered model and
    alias is the champion (default :class:`RegisterConfig`'s)."""
    register = register or RegisterConfig()
    if model is not None and baseline is not None:
        raise InputError("give --model or --baseline, not both")
    if not root.is_dir():
        raise InputError(f"{root}: no such data root; run `mard run` first (or pass --root)")
    if baseline is not None:
        if baseline not in BASELINES:
            raise InputError(f"--baseline {echo(baseline)}: expected one of {', '.join(sorted(BASELINES))}")
        ingest, index, split = newest_data(root, split)
        return Choice(
            "baseline",
            f"{baseline} baseline (--baseline; no language model)",
            None,
            baseline,
            ingest,
            index,
            split,
            None,
            {"name": baseline},
        )
    if model is not None and model.startswith("models:/"):
        found = MODEL_URI.fullmatch(model)
        if found is None:
            raise InputError(f"--model {echo(model)}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        uri, client = _registry(root)
        version = client and _version(client, found["name"], found["alias"], found["version"])
        if not version:
            raise InputError(f"{model}: no such registered model version in the MLflow registry at {uri}")
        return _registered(root, version, "registry", model, split)
    if model is not None:
        return _directory(root, Path(model), split)
    _, client = _registry(root)
    champion = client and _version(client, register.model_name, register.alias, None)
    if champion:
        return _registered(root, champion, "champion", register.alias, split)
    newest = _newest_student(root, split)
    if newest is None:
        raise InputError(
            f"{root}: no student model: no {register.model_name}@{register.alias} in the MLflow "
            f"registry and no completed {STUDENT_STAGE} output; run `mard run` (or pass --model DIR "
            "or models:/NAME@ALIAS, or --baseline knowledge_rules)"
        )
    return newest
