# Shared pieces of the device tests: where the module is, and real TLS peers.
#
# On the unix port the module is st87-sim behind a pty (ST87_PORT, set by tests_device/run.py).
# On a board, target_wiring.py (not in the repository) gives make_uart() for the real UART, and
# the tests that need a peer on this machine print SKIP.

import os
import unittest

try:
    import target_wiring
except ImportError:
    target_wiring = None

PORT = os.getenv("ST87_PORT")
PYTHON = os.getenv("ST87_PYTHON")
PEERCTL = os.getenv("ST87_PEERCTL")
PEERDIR = os.getenv("ST87_PEERDIR") or "/tmp"
CRED = os.getenv("ST87_CRED")  # the st87-cred console script
PKI = PEERDIR + "/pki"

_n = [0]


def make_uart():
    if target_wiring is not None:
        return target_wiring.make_uart()
    from st87.unix import UART

    return UART(PORT)


def hex_of(data):
    import binascii

    return binascii.hexlify(data).decode()


def random_psk():
    return os.urandom(32)


# Start `openssl s_server` for TLS 1.2 PSK on 127.0.0.1 with a free port (through peerctl, a
# CPython helper), and return (port, handle); stop_peer(handle) stops it.
def start_psk_peer(psk, identity, cipher="PSK-AES128-GCM-SHA256"):
    if not (PYTHON and PEERCTL):
        raise RuntimeError("no peer control: run through tests_device/run.py")
    _n[0] += 1
    handle = "{}/peer-{}-{}".format(PEERDIR, hex_of(os.urandom(4)), _n[0])
    cmd = "{} {} start --state {} --psk {} --identity {} --cipher {}".format(
        PYTHON, PEERCTL, handle, hex_of(psk), identity, cipher
    )
    if os.system(cmd) != 0:
        raise RuntimeError("peer did not start")
    with open(handle + ".port") as f:
        return int(f.read()), handle


# The same with a certificate of the test PKI (tests_host/pki.py): TLS "1.2" or "1.3", server
# certificate "server", "expired" or "rogue" (issued by another CA), optionally asking for a
# client certificate.
def start_cert_peer(tls="1.2", cert="server", verify_client=False):
    _n[0] += 1
    handle = "{}/peer-{}-{}".format(PEERDIR, hex_of(os.urandom(4)), _n[0])
    cmd = "{} {} start --state {} --pki {} --tls {} --cert {}{}".format(
        PYTHON, PEERCTL, handle, PKI, tls, cert, " --verify-client" if verify_client else ""
    )
    if os.system(cmd) != 0:
        raise RuntimeError("peer did not start")
    with open(handle + ".port") as f:
        return int(f.read()), handle


# A python-mbedtls DTLS 1.2 echo server (each datagram comes back reversed): PSK when psk is
# given, else the test PKI's server certificate.
def start_dtls_peer(psk=None, identity=None, verify_client=False):
    _n[0] += 1
    handle = "{}/peer-{}-{}".format(PEERDIR, hex_of(os.urandom(4)), _n[0])
    if psk is not None:
        creds = "--psk {} --identity {}".format(hex_of(psk), identity)
    else:
        creds = "--pki " + PKI + (" --verify-client" if verify_client else "")
    if os.system("{} {} start --dtls --state {} {}".format(PYTHON, PEERCTL, handle, creds)):
        raise RuntimeError("DTLS peer did not start")
    with open(handle + ".port") as f:
        return int(f.read()), handle


# A file of the test PKI, e.g. pki_file("ca.der"); the PKI is made on first use.
def pki_file(name):
    if os.system("{} {} pki --pki {}".format(PYTHON, PEERCTL, PKI)) != 0:
        raise RuntimeError("no test PKI")
    with open(PKI + "/" + name, "rb") as f:
        return f.read()


# Run st87-cred with arguments; raises if it fails.
def cred(args):
    if os.system("{} {}".format(CRED, args)) != 0:
        raise RuntimeError("st87-cred " + args.split()[0] + " failed")


def stop_peer(handle):
    os.system("{} {} stop --state {}".format(PYTHON, PEERCTL, handle))


# The module's open sockets, as listed by AT#SOCKETCREATE?.
# Read from sock until a whole line came (or the stream ended), in chunks of up to n bytes.
def recv_line(sock, n=128):
    got = b""
    while not got.endswith(b"\n"):
        chunk = sock.recv(n)
        if not chunk:
            break
        got += chunk
    return got


def open_sockets(modem):
    return [ln for ln in modem.command("AT#SOCKETCREATE?") if ln.startswith(b"#SOCKETCREATE:")]


# A test case with a started modem whose profile SEC (set by the subclass) is emptied before
# each test, and the peer in self.peer stopped after it.
class ProfileTest(unittest.TestCase):
    SEC = None

    def setUp(self):
        import st87

        self.uart = make_uart()
        self.modem = st87.Modem(self.uart)
        self.modem.start(timeout_ms=10000)
        self.modem.tls.delete(self.SEC)
        self.peer = None

    def tearDown(self):
        if self.peer:
            stop_peer(self.peer)
        self.uart.close()
