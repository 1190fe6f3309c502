# CPython: run the device tests on the MicroPython unix port against st87-sim over a pty.
#
# For each tests_device/test_*.py: start `st87-sim --pty` with a fresh state file, run the
# file under `micropython` with lib/, micropython-unittest and tests_device/ on MICROPYPATH,
# and read unittest's "Ran N tests" / "OK" lines. Peers are started by the tests themselves
# through peerctl.py. Prints one summary line and exits non-zero on any failure.

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_BIN = os.path.dirname(sys.executable)


def tool(name):
    path = os.path.join(VENV_BIN, name)
    return path if os.path.exists(path) else shutil.which(name)


def start_sim(workdir):
    sim = subprocess.Popen(
        [tool("st87-sim"), "--pty", "--state", os.path.join(workdir, "its.json")],
        stdout=subprocess.PIPE,
        stderr=open(os.path.join(workdir, "sim.log"), "wb"),
        start_new_session=True,
    )
    line = sim.stdout.readline().decode()
    m = re.match(r"pty: (\S+)", line)
    if not m:
        sim.kill()
        raise RuntimeError("st87-sim printed no pty: " + line)
    return sim, m.group(1)


def run_file(path, workdir, heap):
    sim, pty = start_sim(workdir)
    env = dict(os.environ)
    env.update(
        MICROPYPATH=os.pathsep.join(
            [os.path.join(ROOT, "lib"), os.path.join(ROOT, ".venv", "mpylib"), HERE]
        ),
        ST87_PORT=pty,
        ST87_PYTHON=sys.executable,
        ST87_PEERCTL=os.path.join(HERE, "peerctl.py"),
        ST87_PEERDIR=workdir,
        ST87_CRED=tool("st87-cred") or "st87-cred",
    )
    try:
        proc = subprocess.run(
            [
                tool("micropython"),
                "-X",
                f"heapsize={heap}",
                os.path.join(HERE, "main_runner.py"),
                os.path.basename(path)[:-3],
            ],
            env=env,
            capture_output=True,
            timeout=300,
        )
    finally:
        os.killpg(sim.pid, signal.SIGTERM)
        sim.wait()
        # Peers a crashed test did not stop.
        for pidfile in glob.glob(os.path.join(workdir, "peer-*.pid")):
            try:
                os.kill(int(open(pidfile).read()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    ran = re.search(r"Ran (\d+) tests", out)
    failed = re.search(r"FAILED \(failures=(\d+), errors=(\d+)\)", out)
    n = int(ran.group(1)) if ran else 0
    bad = int(failed.group(1)) + int(failed.group(2)) if failed else 0
    if proc.returncode != 0 or not ran or (not failed and not re.search(r"^OK", out, re.M)):
        bad = max(bad, 1)
    return n, bad, out


def main():
    heap = os.environ.get("ST87_DEVICE_HEAP", "256k")
    files = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    total = failed = passed = 0
    for path in files:
        with tempfile.TemporaryDirectory(prefix="st87dev-") as workdir:
            n, bad, out = run_file(path, workdir, heap)
        total += n
        failed += bad
        passed += max(0, n - bad)
        print(f"--- {os.path.basename(path)}: {n} tests, {bad} failed")
        if bad or "-v" in sys.argv:
            print(out)
    print(f"tests_device: {passed} passed, {failed} failed")
    sys.exit(1 if failed or not total else 0)


if __name__ == "__main__":
    main()
