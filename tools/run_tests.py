# `make test`: the host suite (pytest on CPython), then the device suite (MicroPython unix port
# against st87-sim). Prints how many tests each ran and a closing "N passed, N failed" line.

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = []
    for line in proc.stdout:
        text = line.decode(errors="replace")
        sys.stdout.write(text)
        out.append(text)
    proc.wait()
    return proc.returncode, "".join(out)


def count(pattern, text):
    m = re.findall(pattern, text)
    return int(m[-1]) if m else 0


def main():
    rc_host, out = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests_host"]
    )
    host_passed = count(r"(\d+) passed", out)
    host_failed = count(r"(\d+) failed", out) + count(r"(\d+) errors?", out)
    if rc_host and not host_failed:
        host_failed = 1

    rc_dev, out = run([sys.executable, "tests_device/run.py"])
    dev_passed = count(r"tests_device: (\d+) passed", out)
    dev_failed = count(r"tests_device: \d+ passed, (\d+) failed", out)
    if rc_dev and not dev_failed:
        dev_failed = 1

    print()
    print(f"tests_host:   {host_passed} passed, {host_failed} failed (pytest, CPython)")
    print(f"tests_device: {dev_passed} passed, {dev_failed} failed (MicroPython unix port)")
    print(f"{host_passed + dev_passed} passed, {host_failed + dev_failed} failed")
    ok = rc_host == 0 and rc_dev == 0 and host_passed and dev_passed
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
