# `make suites`: every cipher suite of the application note's Table 6, end to end. The
# library (lib/st87 on CPython) drives the emulated module (st87sim.Module, in-process), and
# the module runs the handshake with a real peer that allows that one suite only:
#
#   TLS 1.3   openssl s_server -tls1_3 -ciphersuites <suite>, the test PKI's server; the
#             profile holds the CA (Table 7 makes it mandatory for TLS 1.3)
#   TLS 1.2   openssl s_server -tls1_2 -cipher <OpenSSL's name>: -psk (-nocert) for the PSK
#             suites, the test PKI's server for ECDHE-ECDSA
#   DTLS 1.2  DTLSEchoServer (tests_host/dtls_peer.py, mbed TLS) limited to the suite
#
# A row passes when the peer itself reports the suite (s_server's "Ciphersuite:" line, the
# DTLS server's record of the handshake) and a message came back reversed. A suite counts as
# negotiated when every row of it passed. A suite that cannot be done is a failed row with
# the reason, never a skipped one. The exit status is 0 whatever the rows say; only a crash
# of the harness itself exits otherwise.
#
#   tools/suites.py [--only NAME]... [-v]     NAME: IANA name, OpenSSL or mbed TLS name, code

import argparse
import collections
import logging
import os
import re
import secrets
import select
import ssl
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _sub in ("lib", "tests_host"):
    if os.path.join(ROOT, _sub) not in sys.path:
        sys.path.insert(0, os.path.join(ROOT, _sub))

from dtls_peer import DTLSEchoServer  # noqa: E402
from peers import OpenSSLServer  # noqa: E402
from pki import PKI, server_args  # noqa: E402

import st87  # noqa: E402
from st87sim import FakeUART, Module  # noqa: E402

log = logging.getLogger("suites")

IDENTITY = "Client_identity"
SEC = 1
PSK_CREDS = "PSK"
CERT_CREDS = "ECDSA cert"

# Table 6, in the note's order: IANA name, code, kind and OpenSSL's name. kind: "tls13" (TLS
# 1.3 only), "ecdsa" or "psk" (TLS and DTLS 1.2; ECDHE-PSK is a PSK suite).
_TABLE_6 = (
    ("TLS_AES_128_GCM_SHA256", 0x1301, "tls13", "TLS_AES_128_GCM_SHA256"),
    ("TLS_AES_128_CCM_SHA256", 0x1304, "tls13", "TLS_AES_128_CCM_SHA256"),
    ("TLS_AES_128_CCM_8_SHA256", 0x1305, "tls13", "TLS_AES_128_CCM_8_SHA256"),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02B, "ecdsa", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", 0xC0AC, "ecdsa", "ECDHE-ECDSA-AES128-CCM"),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", 0xC0AE, "ecdsa", "ECDHE-ECDSA-AES128-CCM8"),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CCM", 0xC0AD, "ecdsa", "ECDHE-ECDSA-AES256-CCM"),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", 0xC0AF, "ecdsa", "ECDHE-ECDSA-AES256-CCM8"),
    ("TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256", 0xC037, "psk", "ECDHE-PSK-AES128-CBC-SHA256"),
    ("TLS_PSK_WITH_AES_128_GCM_SHA256", 0x00A8, "psk", "PSK-AES128-GCM-SHA256"),
    ("TLS_PSK_WITH_AES_128_CBC_SHA256", 0x00AE, "psk", "PSK-AES128-CBC-SHA256"),
    ("TLS_PSK_WITH_AES_128_CCM_8", 0xC0A8, "psk", "PSK-AES128-CCM8"),
    ("TLS_PSK_WITH_AES_128_CCM", 0xC0A4, "psk", "PSK-AES128-CCM"),
    ("TLS_PSK_WITH_AES_256_CCM", 0xC0A5, "psk", "PSK-AES256-CCM"),
    ("TLS_PSK_WITH_AES_256_CCM_8", 0xC0A9, "psk", "PSK-AES256-CCM8"),
)


class Suite(collections.namedtuple("Suite", "iana code kind openssl")):
    # mbed TLS's name, for the DTLS server: the IANA one with dashes.
    @property
    def mbedtls(self):
        return None if self.kind == "tls13" else self.iana.replace("_", "-")


SUITES = tuple(Suite(*row) for row in _TABLE_6)

TLS13, TLS12, DTLS12 = "TLS 1.3", "TLS 1.2", "DTLS 1.2"

Row = collections.namedtuple("Row", "suite protocol credentials ok result")


class RowFailed(Exception):
    pass


def protocols(suite):
    return (TLS13,) if suite.kind == "tls13" else (TLS12, DTLS12)


def credentials(suite):
    return PSK_CREDS if suite.kind == "psk" else CERT_CREDS


# What one run shares: the test PKI and a fresh PSK.
class Bench:
    def __init__(self, directory):
        self.pki = PKI(directory)
        self.psk = secrets.token_bytes(32)

    def profile(self, suite):
        if suite.kind == "psk":
            return {"psk": self.psk, "identity": IDENTITY}
        return {"ca": self.pki.der("ca")}


# --- one row ---


# Run one suite over one protocol. peer_suite makes the peer allow another suite than the row
# checks for (the harness's own test uses it to see a mismatch caught).
def run_row(bench, suite, protocol, peer_suite=None):
    module = None
    capture = _Capture()
    try:
        module = Module(state_path=None)
        modem = st87.Modem(FakeUART(module, timeout=20))
        modem.start(timeout_ms=10000)
        modem.tls.write(modem.tls.plan(SEC, **bench.profile(suite)))
        modem.attach(timeout_ms=10000)
        if protocol == DTLS12:
            _dtls_row(bench, modem, suite, peer_suite or suite, capture)
        else:
            _tls_row(bench, modem, suite, protocol, peer_suite or suite, capture)
        result, ok = "negotiated", True
    except Exception as exc:  # every failure of a row is a result, with its reason
        result, ok = "failed: " + _reason(exc, capture), False
        log.debug("%s over %s", suite.iana, protocol, exc_info=True)
    finally:
        capture.close()
        if module is not None:
            module.close()
    return Row(suite, protocol, credentials(suite), ok, result)


def _tls_row(bench, modem, suite, protocol, peer_suite, capture):
    if protocol == TLS13:
        args = server_args(bench.pki, "1.3") + ["-ciphersuites", peer_suite.openssl]
    elif suite.kind == "psk":
        args = ["-tls1_2", "-nocert", "-psk", bench.psk.hex(), "-psk_identity", IDENTITY]
        args += ["-cipher", peer_suite.openssl, "-rev"]
    else:
        args = server_args(bench.pki, "1.2") + ["-cipher", peer_suite.openssl]
    try:
        server = OpenSSLServer(args).start()
    except RuntimeError as exc:
        errors = _openssl_errors(str(exc)) or [str(exc)[-200:]]
        raise RowFailed(f"openssl s_server did not start: {', '.join(errors)}") from None
    capture.peer = server
    try:
        line = f"st87 {suite.iana}".encode()
        with modem.socket(st87.TCP, sec_id=SEC, send_timeout=15) as sock:
            sock.settimeout(15)
            # The host name: the module uses it for SNI and the certificate check.
            sock.connect(("localhost", server.port))
            sock.write(line + b"\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = sock.recv(256)
                if not chunk:
                    raise RowFailed(f"the peer closed the session after {got!r}")
                got += chunk
    finally:
        # What s_server printed (the suite it chose, or why it refused), before it goes.
        out = _peer_output(server)
        server.stop()
    versions = re.findall(r"^Protocol version: (\S+)", out, re.M)
    suites = re.findall(r"^Ciphersuite: (\S+)", out, re.M)
    if not suites:
        raise RowFailed("s_server reported no negotiated suite")
    want = "TLSv1.3" if protocol == TLS13 else "TLSv1.2"
    version = versions[-1] if versions else "?"
    if suites[-1] != suite.openssl or version != want:
        raise RowFailed(f"s_server negotiated {version} {suites[-1]}, not {want} {suite.openssl}")
    if got != line[::-1] + b"\n":
        raise RowFailed(f"sent {line!r}, got back {got!r}")


def _dtls_row(bench, modem, suite, peer_suite, capture):
    if suite.kind == "psk":
        server = DTLSEchoServer(psk=bench.psk, identity=IDENTITY, suite=peer_suite.mbedtls)
    else:
        server = DTLSEchoServer.for_pki(bench.pki, suite=peer_suite.mbedtls)
    capture.peer = server
    line = f"st87 {suite.iana}".encode()
    with server:
        with modem.socket(st87.UDP, sec_id=SEC) as sock:
            sock.settimeout(15)
            sock.connect(("127.0.0.1", server.port))
            sock.send(line)
            got = sock.recv(1500)
        hs = server.wait_handshake(0, timeout=2)
    if not hs.ok:
        raise RowFailed(f"DTLS server: {hs.error}")
    if hs.suite != suite.mbedtls or hs.suite_code != suite.code:
        raise RowFailed(
            f"the DTLS server negotiated {hs.suite} (0x{hs.suite_code or 0:04X}), "
            f"not {suite.mbedtls}"
        )
    if got != line[::-1]:
        raise RowFailed(f"sent {line!r}, got back {got!r}")


# --- reasons ---


# The emulator's log lines while a row runs (its handshake failures say why), and the peer.
class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []
        self.peer = None
        self._logger = logging.getLogger("st87sim")
        self._logger.addHandler(self)

    def emit(self, record):
        self.lines.append((record.levelno, record.getMessage()))

    def close(self):
        self._logger.removeHandler(self)
        super().close()

    # Why the emulator failed its handshake: its last warning, from "failed: " on.
    def emulator(self):
        for level, text in reversed(self.lines):
            if level >= logging.WARNING:
                return text.split("failed: ", 1)[-1]
        return None

    def peer_words(self):
        if isinstance(self.peer, DTLSEchoServer):
            failed = [hs.error for hs in self.peer.handshakes if not hs.ok]
            return f"DTLS server: {failed[-1]}" if failed else None
        if isinstance(self.peer, OpenSSLServer):
            errors = _openssl_errors(self.peer.output.decode(errors="replace"))
            return "s_server: " + ", then ".join(errors) if errors else None
        return None


def _reason(exc, capture):
    # The library's errors name their command (AT#TCPCONNECT failed: +CME ERROR: 2152).
    own = isinstance(exc, (RowFailed, st87.ModemError))
    parts = [str(exc) if own else f"{type(exc).__name__}: {exc}"]
    if not isinstance(exc, RowFailed):
        emulator = capture.emulator()
        if emulator:
            parts.append(f"st87-sim: {emulator}")
        peer = capture.peer_words()
        if peer:
            parts.append(peer)
        suite = _tls13_suite_of(capture)
        if suite:
            parts.insert(0, suite)
    return "; ".join(parts)


# For a TLS 1.3 row that failed: whether the emulator's client even offers the suite. It is
# Python's ssl, whose TLS 1.3 suites are OpenSSL's defaults (Python 3.11 cannot set them).
def _tls13_suite_of(capture):
    server = capture.peer
    if not isinstance(server, OpenSSLServer) or "-ciphersuites" not in server.args:
        return None
    wanted = server.args[server.args.index("-ciphersuites") + 1]
    offered = tls13_offered()
    if wanted in offered:
        return None
    return (
        f"the emulator's TLS 1.3 client (Python ssl) does not offer {wanted} "
        f"(it offers {', '.join(offered)})"
    )


def tls13_offered():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"]


# "...:error:0A0000C1:SSL routines:tls_post_process_client_hello:no shared cipher:..." ->
# "no shared cipher": each reason once, in order (the emulator may have connected twice).
def _openssl_errors(text):
    errors = []
    for error in re.findall(r"error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:\n]+)", text):
        if error not in errors:
            errors.append(error)
    return errors


# Everything s_server printed so far, after a short wait for the lines of the last session.
def _peer_output(server, settle_s=0.3):
    fd = server.proc.stdout.fileno()
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            server.output += chunk
    return server.output.decode(errors="replace")


# --- the table ---


def select_suites(names):
    if not names:
        return list(SUITES)
    chosen = []
    for name in names:
        key = name.strip().lower()
        found = [
            s
            for s in SUITES
            if key in (s.iana.lower(), s.openssl.lower(), (s.mbedtls or "").lower())
            or key in (f"0x{s.code:04x}", f"{s.code:04x}")
        ]
        if not found:
            raise SystemExit(f"suites.py: {name}: not a suite of Table 6")
        chosen += [s for s in found if s not in chosen]
    return [s for s in SUITES if s in chosen]  # in the note's order


def print_table(rows, out=sys.stdout):
    heads = ("suite", "code", "protocol", "credentials", "result")
    cells = [
        (r.suite.iana, f"0x{r.suite.code:04X}", r.protocol, r.credentials, r.result) for r in rows
    ]
    widths = [max(len(c[i]) for c in [heads, *cells]) for i in range(4)]
    for c in [heads, *cells]:
        print("  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  " + c[4], file=out)


def negotiated(rows):
    by_suite = collections.OrderedDict()
    for row in rows:
        by_suite.setdefault(row.suite, []).append(row.ok)
    return sum(all(oks) for oks in by_suite.values()), len(by_suite)


def main(argv=None):
    if argv is None:
        # The emulated module offers exactly the note's TLS 1.3 suites only under the OpenSSL
        # configuration st87sim ships; it must be in place before OpenSSL is first used.
        from st87sim import tls13

        tls13.reexec_with_module_suites()
    parser = argparse.ArgumentParser(description="Table 6 cipher suites, end to end")
    parser.add_argument("--only", action="append", metavar="NAME", help="run this suite only")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the emulator")
    args = parser.parse_args(argv)
    # The emulator's log feeds the reasons (_Capture); it reaches the terminal only with -v.
    emulator = logging.getLogger("st87sim")
    emulator.setLevel(logging.INFO)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    else:
        emulator.propagate = False
        emulator.addHandler(logging.NullHandler())
    suites = select_suites(args.only)
    started = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="st87-suites-") as work:
        bench = Bench(os.path.join(work, "pki"))
        for suite in suites:
            for protocol in protocols(suite):
                rows.append(run_row(bench, suite, protocol))
                log.info("%s %s: %s", suite.iana, protocol, rows[-1].result)
    print_table(rows)
    n, total = negotiated(rows)
    print(f"({len(rows)} rows in {time.monotonic() - started:.0f} s)")
    print(f"suites negotiated: {n}/{total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
