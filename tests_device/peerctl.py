# CPython: start and stop TLS peers for the device tests, which run on the MicroPython unix port
# and cannot spawn processes themselves beyond os.system.
#
#   peerctl.py start --state PATH --psk HEX --identity TEXT [--cipher NAME]
#       starts openssl s_server on 127.0.0.1 with a free port, waits until it accepts, writes
#       PATH.port and PATH.pid, and returns, leaving the server running;
#   peerctl.py stop --state PATH
#       stops it.

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests_host"))

from peers import OpenSSLServer  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("action", choices=("start", "stop"))
    p.add_argument("--state", required=True)
    p.add_argument("--psk")
    p.add_argument("--identity")
    p.add_argument("--cipher", default="PSK-AES128-GCM-SHA256")
    a = p.parse_args()
    if a.action == "start":
        server = OpenSSLServer.psk(a.psk, a.identity, cipher=a.cipher, detach=True)
        server.start()
        with open(a.state + ".pid", "w") as f:
            f.write(str(server.pid))
        with open(a.state + ".port", "w") as f:
            f.write(str(server.port))
        return
    try:
        with open(a.state + ".pid") as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass
    for ext in (".pid", ".port"):
        try:
            os.remove(a.state + ext)
        except OSError:
            pass


if __name__ == "__main__":
    main()
