"""Ingest speed and memory against the floor: a bare lxml iterparse scan of the same file, in one run.

    python bench/ingest.py --drugs 3000 [--interactions-per-drug 170]

Generates a synthetic DrugBank release of the given size (cached under bench/.data), then times, each in a
fresh process, (1) a bare `lxml.etree.iterparse` scan (end events of <drug>, elements cleared) and (2) the
full MARD ingest into Parquet, and prints the ratio of wall times and each process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCAN = """
import sys
from lxml import etree
n = 0
for _, el in etree.iterparse(sys.argv[1], events=("end",), tag="{http://www.drugbank.ca}drug"):
    el.clear(keep_tail=True)
    n += 1
print(n)
"""

INGEST = """
import sys
from pathlib import Path
from mard_core.ingest import ingest
ingest(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def timed(code: str, *args: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``python -c code args`` in a fresh process."""
    wrapper = (
        "import resource, sys, time\n"
        f"t = time.perf_counter()\nexec({code!r})\n"
        "print('__T__', time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *args], check=True, capture_output=True, text=True
    ).stdout
    _, secs, rss = next(line for line in out.splitlines() if line.startswith("__T__")).split()
    return float(secs), float(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drugs", type=int, default=3000)
    ap.add_argument("--interactions-per-drug", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from mard_core.synth import write_release

    data = Path(__file__).parent / ".data"
    data.mkdir(exist_ok=True)
    release = data / f"release-{args.drugs}-{args.interactions_per_drug}-{args.seed}.xml"
    if not release.exists():
        t = time.perf_counter()
        kwargs = (
            {}
            if args.interactions_per_drug is None
            else {"interactions_per_drug": args.interactions_per_drug}
        )
        write_release(release, args.drugs, args.seed, **kwargs)
        print(
            f"generated {release.name}: {release.stat().st_size / 1e6:.0f} MB in "
            f"{time.perf_counter() - t:.1f} s"
        )
    size_mb = release.stat().st_size / 1e6
    scan_s, scan_rss = timed(SCAN, str(release))
    with tempfile.TemporaryDirectory() as out:
        ingest_s, ingest_rss = timed(INGEST, str(release), out)
    result = {
        "file_mb": round(size_mb, 1),
        "bare_scan_s": round(scan_s, 2),
        "ingest_s": round(ingest_s, 2),
        "ratio_ingest_over_scan": round(ingest_s / scan_s, 2),
        "ingest_mb_per_s": round(size_mb / ingest_s, 1),
        "scan_peak_rss_mb": round(scan_rss),
        "ingest_peak_rss_mb": round(ingest_rss),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
