# CPython: start and stop TLS peers for the device tests, which run on the MicroPython unix port
# and cannot spawn processes themselves beyond os.system.
#
#   peerctl.py start --state PATH --psk HEX --identity TEXT [--cipher NAME]
#       openssl s_server for TLS 1.2 PSK;
#   peerctl.py start --state PATH --pki DIR [--tls 1.2|1.3] [--cert NAME] [--verify-client]
#       openssl s_server with a certificate of the test PKI in DIR (made on first use; see
#       tests_host/pki.py), optionally asking for a client certificate;
#   peerctl.py start --state PATH --dtls (--psk HEX --identity TEXT | --pki DIR [--verify-client])
#       a python-mbedtls DTLS 1.2 echo server (tests_host/dtls_peer.py), in a process of its own;
#   peerctl.py stop --state PATH
#
# start picks a free port on 127.0.0.1, waits until the server accepts, writes PATH.port and
# PATH.pid, and returns, leaving the server running.

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests_host"))

from peers import OpenSSLServer  # noqa: E402
from pki import PKI, server_args  # noqa: E402


# The DTLS peer is a thread of a Python process: fork one that serves until SIGTERM, and
# return once it has written its port.
def start_dtls(a):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        from dtls_peer import DTLSEchoServer

        if a.pki:
            server = DTLSEchoServer.for_pki(PKI(a.pki), verify_client=a.verify_client)
        else:
            server = DTLSEchoServer(psk=bytes.fromhex(a.psk), identity=a.identity)
        server.start()
        signal.signal(signal.SIGTERM, lambda *_: (server.stop(), os._exit(0)))
        with open(a.state + ".port.tmp", "w") as f:
            f.write(str(server.port))
        os.replace(a.state + ".port.tmp", a.state + ".port")
        while True:
            signal.pause()
    with open(a.state + ".pid", "w") as f:
        f.write(str(pid))
    deadline = time.monotonic() + 15
    while not os.path.exists(a.state + ".port"):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            sys.exit("DTLS peer did not start")
        time.sleep(0.02)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("action", choices=("start", "stop", "pki"))
    p.add_argument("--state")
    p.add_argument("--psk")
    p.add_argument("--identity")
    p.add_argument("--cipher", default="PSK-AES128-GCM-SHA256")
    p.add_argument("--pki")
    p.add_argument("--tls", default="1.2", choices=("1.2", "1.3"))
    p.add_argument("--cert", default="server")
    p.add_argument("--verify-client", action="store_true")
    p.add_argument("--dtls", action="store_true")
    a = p.parse_args()
    if a.action == "pki":
        PKI(a.pki)
        return
    if a.action == "start" and a.dtls:
        start_dtls(a)
        return
    if a.action == "start":
        if a.pki:
            args = server_args(PKI(a.pki), a.tls, a.cert, a.verify_client)
            server = OpenSSLServer(args, detach=True)
        else:
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
