"""Import time: ``import dspex_actors`` vs ``import dspy``, side by side, in fresh processes.

Each sample is a new interpreter that times its own ``import X``, so nothing
is cached in ``sys.modules``; samples of the two are interleaved so machine load hits
both alike. Prints medians and the ratio, and the same for "import and first use"
(a signature, a Predict and an LM built: what a program does before its first call).

    python benchmarks/bench_import.py [--runs 9]

DSPy is needed for the comparison (``pip install -e '.[bench]'``); without it only
our numbers are printed. Targets (issue "The house in order"): ``import dspex_actors``
<= 0.3 s on this machine and <= 0.4x ``import dspy``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys

FIRST_USE = {
    "dspex_actors": (
        "import dspex_actors as dx\n"
        "qa = dx.Predict('question -> answer')\n"
        "lm = dx.LM('openai/x', api_base='http://127.0.0.1:9/v1', api_key='k')\n"
    ),
    "dspy": (
        "import dspy\n"
        "qa = dspy.Predict('question -> answer')\n"
        "lm = dspy.LM('openai/x', api_base='http://127.0.0.1:9/v1', api_key='k')\n"
    ),
}


def _seconds(module: str) -> float:
    """Seconds ``import module`` takes in a fresh interpreter (timed inside it)."""
    code = (
        "import time\n"
        "started = time.perf_counter()\n"
        f"import {module}\n"
        "print(time.perf_counter() - started)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return float(result.stdout.strip().splitlines()[-1])


def _wall(code: str) -> float:
    """Wall time of a fresh interpreter running ``code``, minus an empty one's."""
    import time

    def run(src: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", src], check=True, timeout=120)
        return time.perf_counter() - started

    return run(code) - run("pass")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="samples of each (default 9)")
    args = parser.parse_args()
    names = ["dspex_actors"]
    if importlib.util.find_spec("dspy") is not None:
        names.append("dspy")
    imports: dict[str, list[float]] = {n: [] for n in names}
    first_use: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.runs):
        for name in names:
            imports[name].append(_seconds(name))
            first_use[name].append(_wall(FIRST_USE[name]))
    print(f"python {sys.version.split()[0]}, {args.runs} fresh interpreters each, interleaved")
    print(f"{'':34}{'median s':>10}{'min s':>10}")
    for label, data in (("import", imports), ("import + Predict + LM (wall)", first_use)):
        for name in names:
            print(
                f"{label + ' ' + name:34}{statistics.median(data[name]):10.3f}"
                f"{min(data[name]):10.3f}"
            )
        if "dspy" in data:
            ratio = statistics.median(data["dspex_actors"]) / statistics.median(data["dspy"])
            print(f"{'  ratio dspex_actors / dspy':34}{ratio:10.2f}x")


if __name__ == "__main__":
    main()
