# The package as users get it: every library file compiles with mpy-cross, package.json lists
# them all, and mip on the unix port installs it from a local HTTP server into a directory
# whose copy then starts the (emulated) module.

import glob
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from peers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
LIB_FILES = sorted(glob.glob(os.path.join(ROOT, "lib", "st87", "*.py")))


@pytest.mark.parametrize("path", LIB_FILES, ids=os.path.basename)
def test_compiles_with_mpy_cross(path, tmp_path):
    out = tmp_path / "x.mpy"
    proc = subprocess.run(
        [os.path.join(BIN, "mpy-cross"), "-o", str(out), path], capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.stat().st_size > 0


def test_package_json_lists_every_library_file():
    manifest = json.load(open(os.path.join(ROOT, "package.json")))
    sources = sorted(src for _, src in manifest["urls"])
    assert sources == sorted(os.path.relpath(p, ROOT) for p in LIB_FILES)
    for dest, src in manifest["urls"]:
        assert dest == "st87/" + os.path.basename(src)
    import st87

    assert manifest["version"] == st87.__version__


@pytest.fixture
def http_server():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait()


def test_mip_install_then_start_against_the_emulator(http_server, tmp_path, sim_pty):
    target = tmp_path / "installed"
    micropython = os.path.join(BIN, "micropython")
    proc = subprocess.run(
        [
            micropython,
            "-c",
            f"import mip; mip.install('{http_server}/package.json', target='{target}')",
        ],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = sorted(p.name for p in (target / "st87").iterdir())
    assert installed == sorted(os.path.basename(p) for p in LIB_FILES)

    # Only the installed copy is on the path: not lib/.
    script = (
        "import st87\n"
        "from st87.unix import UART\n"
        f"m = st87.Modem(UART('{sim_pty}'))\n"
        "m.start(timeout_ms=10000)\n"
        "print('started', st87.__file__, m.identity()[0])\n"
    )
    env = dict(os.environ, MICROPYPATH=str(target))
    proc = subprocess.run(
        [micropython, "-c", script], env=env, capture_output=True, timeout=60, cwd=tmp_path
    )
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert out.startswith(f"started {target}/st87/__init__.py ST87M01")
