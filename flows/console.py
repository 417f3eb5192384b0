"""What `mard run` prints: the stages' progress, warnings of the run itself and errors, nothing else.

Prefect's state chatter, library records and Python warnings go to ``<root>/.services/run.log`` instead (the
Prefect UI keeps every record of the run), and an error the user can fix (:class:`MardError`) shows no
traceback: the command line prints it as one line.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from mard_core.errors import MardError

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
CHATTER = ("Finished in state", "Beginning flow run", "View at ", "Created task run", "Executing ")
# Set in the stages' process before any library is imported (progress bars and advisories).
QUIET_ENV = {
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TQDM_DISABLE": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_DEDUP_LOGS": "0",
    "MLFLOW_CONFIGURE_LOGGING": "false",  # MLflow's records go through the root handlers, filtered below
}


class RunConsole(logging.Filter):
    """Keep run-logger records that are not Prefect's state chatter, and any other record at ERROR or above,
    except a user-fixable error's traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], MardError):
            return False
        if record.name.startswith(RUN_LOGGERS):
            return not record.getMessage().startswith(CHATTER)
        return record.levelno >= logging.ERROR


def quiet(root: Path) -> Path:
    """Filter the console handlers and send everything to ``<root>/.services/run.log``; returns that path."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    from prefect.logging.configuration import setup_logging

    setup_logging()  # Prefect's console handlers, filtered below (Prefect does not set them up twice)

    log = root / ".services" / "run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    top = logging.getLogger()
    for console in top.handlers:
        console.addFilter(RunConsole())
    top.addHandler(handler)
    logging.captureWarnings(True)
    warnings.simplefilter("default")  # every warning once per place, into run.log through py.warnings
    return log


def headline(outputs: dict[str, str], top: int = 3) -> str:
    """The end of a run: the leaderboard's best systems per split (and the student), and what to try next."""
    import polars as pl

    lines = []
    board_file = Path(outputs.get("evaluate", "")) / "leaderboard.parquet"
    if board_file.is_file():
        board = pl.read_parquet(board_file)
        lines.append(f"Leaderboard ({board_file.parent / 'leaderboard.md'}), exact accuracy [95% CI] (n):")
        for (strategy,), rows in board.group_by("strategy", maintain_order=True):
            shown = (
                rows.head(top)
                .vstack(rows.filter(pl.col("system") == "student:mard"))
                .unique("system", maintain_order=True)
            )
            cells = [
                f"{r['system']} {r['exact_accuracy']:.3f} "
                f"[{r.get('exact_accuracy_ci95_lo', float('nan')):.3f}, "
                f"{r.get('exact_accuracy_ci95_hi', float('nan')):.3f}] ({r['n']})"
                for r in shown.to_dicts()
            ]
            lines.append(f"  {strategy}: " + "; ".join(cells))
    lines += [
        "Next:",
        "  mard predict voriconazole axitinib      # a cited prediction from the trained student",
        "  mard status                              # every stage: state, duration, output",
        "  make serve                               # Prefect UI :4200, MLflow UI :5000 on 127.0.0.1",
    ]
    return "\n".join(lines)
