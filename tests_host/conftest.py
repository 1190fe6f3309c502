import os
import re
import signal
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("lib", "tests_host"):
    path = os.path.join(ROOT, sub)
    if path not in sys.path:
        sys.path.insert(0, path)


# `st87-sim --pty` as a separate process, the way the unix port meets it; yields the pty path.
@pytest.fixture
def sim_pty(tmp_path):
    sim = os.path.join(os.path.dirname(sys.executable), "st87-sim")
    proc = subprocess.Popen(
        [sim, "--pty", "--state", str(tmp_path / "its.json")],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "sim.log", "wb"),
        start_new_session=True,
    )
    line = proc.stdout.readline().decode()
    m = re.match(r"pty: (\S+)", line)
    assert m, f"st87-sim printed {line!r}"
    yield m.group(1)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)
