"""One round of `cargo xtask bench e2b`: create a sandbox, run `true` in it, kill it (which removes it),
through one client, timing each step; prints one JSON object of seconds.

    python e2b_driver.py e2b      # the stock E2B SDK (E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY)
    python e2b_driver.py msb      # microsandbox's SDK (MSB_SERVER_URL, MSB_SERVER_TOKEN, MSB_BENCH_IMAGE)

Imports and the interpreter's start are outside the timings: the bench compares the two
paths through the server, not Python's start-up.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable, Dict, Tuple


def e2b_round() -> Tuple[Callable[[], object], Callable[[object], None], Callable[[object], None]]:
    from e2b import Sandbox

    def run(sbx: object) -> None:
        result = sbx.commands.run("true")  # type: ignore[attr-defined]
        assert result.exit_code == 0, result

    def kill(sbx: object) -> None:
        sbx.kill()  # type: ignore[attr-defined]

    return Sandbox.create, run, kill


def msb_round() -> Tuple[Callable[[], object], Callable[[object], None], Callable[[object], None]]:
    from microsandbox import Client, Sandbox

    client = Client(os.environ["MSB_SERVER_URL"], os.environ["MSB_SERVER_TOKEN"], boot_timeout=600)
    image = os.environ["MSB_BENCH_IMAGE"]

    def run(sbx: object) -> None:
        result = sbx.exec("true")  # type: ignore[attr-defined]
        assert result.exit_code == 0, result

    def create() -> object:
        return Sandbox.create(image=image, client=client)

    def kill(sbx: object) -> None:
        # Unnamed, so ephemeral: `kill` stops it at once and that removes it, as E2B's does.
        sbx.kill()  # type: ignore[attr-defined]

    return create, run, kill


def main() -> None:
    create, run, remove = {"e2b": e2b_round, "msb": msb_round}[sys.argv[1]]()
    times: Dict[str, float] = {}
    t0 = time.perf_counter()
    sbx = create()
    t1 = time.perf_counter()
    run(sbx)
    t2 = time.perf_counter()
    remove(sbx)
    t3 = time.perf_counter()
    times.update(create=t1 - t0, exec=t2 - t1, remove=t3 - t2, total=t3 - t0)
    print(json.dumps(times))


if __name__ == "__main__":
    main()
