# `make demo`: the field-sensor application (main.py) on the MicroPython unix port, through
# the emulated module (st87-sim on a pty), to a real TLS 1.2 PSK server (openssl s_server).
#
# The server listens on 127.0.0.1 with a free port; the application is configured with the
# application note's address 192.168.21.4:4433, which st87-sim routes to that port. A fresh
# PSK is made for each run, and the emulator starts with an empty ITS, so the application
# provisions the profile, commits it, attaches, and runs its session.

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
sys.path.insert(0, os.path.join(ROOT, "tests_host"))

from peers import OpenSSLServer  # noqa: E402

IDENTITY = "Client_identity"
NOTE_ADDRESS = "192.168.21.4:4433"


def tool(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else shutil.which(name)


def main():
    psk = secrets.token_hex(32)
    work = tempfile.mkdtemp(prefix="st87-demo-")
    sim = None
    try:
        server = OpenSSLServer.psk(psk, IDENTITY, cipher="PSK-AES128-GCM-SHA256").start()
        print(
            f"openssl s_server: TLS 1.2, TLS_PSK_WITH_AES_128_GCM_SHA256, 127.0.0.1:{server.port}"
        )

        sim = subprocess.Popen(
            [
                tool("st87-sim"),
                "--pty",
                "--state",
                os.path.join(work, "its.json"),
                "--route",
                f"{NOTE_ADDRESS}=127.0.0.1:{server.port}",
            ],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        pty = re.match(r"pty: (\S+)", sim.stdout.readline().decode()).group(1)
        print(f"st87-sim: {pty}, {NOTE_ADDRESS} routed to 127.0.0.1:{server.port}")

        config = os.path.join(work, "st87.json")
        host, port = NOTE_ADDRESS.split(":")
        with open(config, "w") as f:
            json.dump(
                {
                    "port": pty,
                    "sec_id": 0,
                    "psk": psk,
                    "identity": IDENTITY,
                    "host": host,
                    "port_number": int(port),
                    "trace": True,
                },
                f,
            )
        os.chmod(config, 0o600)

        print("micropython main.py (AT trace: > to the module, < from it)\n", flush=True)
        env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, "lib"))
        proc = subprocess.run(
            [tool("micropython"), os.path.join(ROOT, "main.py"), config],
            env=env,
            capture_output=True,
            timeout=120,
        )
        out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        print(out, end="")

        # The demo checks its own claims: the session ended with the server's reply, and the
        # PSK is nowhere in what was printed.
        if psk.lower() in out.lower():
            print("demo: FAILED, the PSK appeared in the output")
            return 1
        if proc.returncode != 0 or not re.search(r"^reply: \S", out, re.M):
            print(f"demo: FAILED (exit {proc.returncode})")
            return 1
        return 0
    finally:
        if sim is not None:
            os.killpg(sim.pid, signal.SIGTERM)
            sim.wait()
        if "server" in locals():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
