"""Run the real CLI on every case under a folder, in this one process, and report each outcome.

    python tests/fuzz/driver.py manifests ROOT     # reconciler validate --format json -m ROOT/CASE
    python tests/fuzz/driver.py state ROOT         # reconciler state list --state ROOT/CASE/renders.state.json

The parent test starts this under resource limits (address space, CPU time), so a case that
would exhaust the machine fails as MemoryError or SIGXCPU, and a crash ends the process:
every case is announced on stderr before it runs, so a dead process names its last case.
One process serves many cases because starting Python and importing the CLI costs more
than most cases. One JSON line per case on stdout: case, exit code, stdout, stderr, and
any exception that escaped the CLI.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli


def _args(kind: str, case: Path) -> list[str]:
    if kind == "manifests":
        return ["validate", "--format", "json", "-m", str(case)]
    return ["state", "list", "--state", str(case / "renders.state.json")]


def main() -> None:
    kind, root = sys.argv[1], Path(sys.argv[2])
    runner = CliRunner()
    for case in sorted(p for p in root.iterdir() if p.is_dir()):
        print(f"case {case.name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        result = runner.invoke(cli, _args(kind, case), catch_exceptions=True)
        seconds = time.perf_counter() - started
        escaped = None
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            escaped = f"{type(result.exception).__name__}: {result.exception}"
        line = {
            "case": case.name,
            "exit": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "exception": escaped,
            "seconds": round(seconds, 3),
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stdout.write(json.dumps({"done": True, "peak_kib": peak}) + "\n")


if __name__ == "__main__":
    main()
