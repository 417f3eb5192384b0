"""The content-addressed stage pattern every stage follows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mard_core.stage import StageRun, read_manifest, run_stage, stage_key, verify_output


@dataclass(frozen=True)
class Cfg:
    n: int = 1
    names: tuple[str, ...] = ("a",)


def test_key_depends_on_everything_and_only_that() -> None:
    base = stage_key("s", "1", Cfg(), {"x": "abc"})
    assert base == stage_key("s", "1", Cfg(), {"x": "abc"})
    assert (
        len(
            {
                base,
                stage_key("t", "1", Cfg(), {"x": "abc"}),
                stage_key("s", "2", Cfg(), {"x": "abc"}),
                stage_key("s", "1", Cfg(n=2), {"x": "abc"}),
                stage_key("s", "1", Cfg(), {"x": "abd"}),
            }
        )
        == 5
    )


def test_complete_output_is_reused_and_damage_is_rebuilt(tmp_path: Path) -> None:
    calls = []

    def build(tmp: Path) -> dict:
        calls.append(tmp)
        (tmp / "table.txt").write_text("rows")
        return {"rows": 1}

    run = StageRun("s", "1", Cfg(), {}, tmp_path)
    out = run_stage(run, build)
    assert out == tmp_path / "s" / run.key and read_manifest(out)["rows"] == 1
    assert run_stage(run, build) == out and len(calls) == 1  # nothing to do
    (out / "table.txt").write_text("ROWS")  # same size, different content
    assert verify_output(out) == [f"{out / 'table.txt'}: content changed since the stage wrote it"]
    run_stage(run, build)
    assert len(calls) == 2 and (out / "table.txt").read_text() == "rows" and not verify_output(out)
    run_stage(run, build, force=True)
    assert len(calls) == 3


def test_crash_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    def build(tmp: Path) -> dict:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")

    run = StageRun("s", "1", Cfg(), {}, tmp_path)
    with pytest.raises(RuntimeError):
        run_stage(run, build)
    assert not run.out.exists() and list((tmp_path / "s").iterdir()) == []  # work dir removed
    run.out.mkdir(parents=True)  # a directory without a manifest (e.g. from a killed process) is not complete
    assert not run.is_complete()


def test_resumable_stage_keeps_its_work_across_a_crash(tmp_path: Path) -> None:
    attempts = []

    def build(work: Path) -> dict:
        attempts.append(sorted(p.name for p in work.iterdir()))
        (work / "shard-0").write_text("done")
        if len(attempts) == 1:
            raise KeyboardInterrupt  # killed after the first shard
        (work / "shard-1").write_text("done")
        return {}

    run = StageRun("s", "1", Cfg(), {}, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_stage(run, build, resume=True)
    assert not run.out.exists()  # nothing looks complete
    run_stage(run, build, resume=True)
    assert attempts == [[], ["shard-0"]] and sorted(p.name for p in run.out.iterdir()) == [
        "manifest.json",
        "shard-0",
        "shard-1",
    ]


def test_the_cache_policy_keys_a_task_by_its_spec_of_the_task_parameters(tmp_path: Path) -> None:
    from tasks._stage import StageCache
    from tasks.evaluate import evaluate_spec

    system_dir = tmp_path / "eval-majority__random" / "0123456789abcdef"
    run = evaluate_spec([str(system_dir)], str(tmp_path))
    policy = StageCache(spec=evaluate_spec)
    inputs = {"system_dirs": [str(system_dir)], "root": str(tmp_path), "force": False}
    assert policy.compute_key(None, inputs, {}) is None  # not built yet

    def build(work: Path) -> dict[str, str]:
        (work / "leaderboard.md").write_text("x")
        return {}

    run_stage(run, build)
    assert policy.compute_key(None, inputs, {}) == f"evaluate-{run.key}"
    assert policy.compute_key(None, {**inputs, "force": True}, {}) is None
