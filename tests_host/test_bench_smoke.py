# A short smoke run of `make bench` (bench/run.py --smoke), so the benchmarks cannot rot: it
# must build the .mpy files, run every benchmark script on the unix port and both flows
# against the emulator, and print the table and the summary line. No figure is asserted on.

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPY = os.path.join(os.path.dirname(sys.executable), "micropython")

SUMMARY = re.compile(
    r"bench: parse_ratio=\d+(\.\d+)? heap_per_cycle=\d+ min_heap_psk=(\d+|None) "
    r"min_heap_mtls=(\d+|None) send_overhead=\d+ mpy_total=\d+"
)


def test_bench_smoke():
    if not os.path.exists(MPY):
        import pytest

        pytest.skip("no MicroPython unix port in the venv (make setup)")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "run.py"), "--smoke"],
        capture_output=True,
        timeout=300,
        cwd=ROOT,
    )
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    lines = out.strip().splitlines()
    assert SUMMARY.fullmatch(lines[-1]), lines[-1]
    # Both flows completed at the fixed heap.
    assert "min_heap_psk=256" in lines[-1] and "min_heap_mtls=256" in lines[-1], lines[-1]
    for item in ("1. parse", "2. heap", "3. smallest heap", "4. UART bytes", "5. .mpy"):
        assert any(ln.startswith("| " + item) for ln in lines), item
    # The ROMFS image was built and the package imported from it.
    assert re.search(r"from ROMFS, KiB +\| \d+\.\d", out), out
    with open(os.path.join(ROOT, "build", "bench-smoke.md")) as f:
        doc = f.read()
    assert "MicroPython: " in doc and lines[-1] in doc


def test_steady_state_send_and_receive_allocate_nothing():
    # The heap benchmark's cycle (64-byte send, #IPRECV, 64-byte #IPREAD into a caller buffer)
    # on the unix port: allocation is deterministic, so this figure can be asserted exactly.
    import json

    if not os.path.exists(MPY):
        import pytest

        pytest.skip("no MicroPython unix port in the venv (make setup)")
    env = dict(
        os.environ, MICROPYPATH=os.path.join(ROOT, "lib") + ":" + os.path.join(ROOT, "bench")
    )
    proc = subprocess.run(
        [MPY, "-X", "heapsize=4M", os.path.join(ROOT, "bench", "bench_cycle.py"), "200"],
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    figures = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert figures["fake"] == 0.0
    assert figures["st87_raw"] == 0.0, figures
    assert figures["naive"] > 0  # the measurement does see allocations
