"""The bare baseline of ``profile_request.py --transport http``: a long-lived
``ThreadPoolExecutor(N)`` posting the same bodies through one pooled
``requests.Session`` (as ``bench_runtime.py``'s bare client), for callgrind.

Threading: single-threaded driver; the pool and the rule server are stopped at exit.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_runtime import Bare, pooled_session
from profile_request import start_server


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    proc, api_base = start_server(args.latency)
    session = pooled_session(args.in_flight)
    bare = Bare(api_base + "/chat/completions", session)
    counter = iter(range(10**9))
    try:
        with ThreadPoolExecutor(args.in_flight) as executor:

            def batch(n: int) -> None:
                payloads = [bare.payload(f"What is {next(counter)} plus 7?") for _ in range(n)]
                list(executor.map(bare.post, payloads))

            batch(args.warmup)
            for _ in range(args.repeat):
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                c0 = time.process_time()
                if args.requests:
                    batch(args.requests)
                n = max(args.requests, 1)
                per = (time.process_time() - c0) / n * 1e6
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                switches = (r1.ru_nvcsw - r0.ru_nvcsw + r1.ru_nivcsw - r0.ru_nivcsw) / n
                print(
                    f"requests={args.requests} cpu/request={per:.0f} us "
                    f"switches/request={switches:.1f}"
                )
    finally:
        session.close()
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
