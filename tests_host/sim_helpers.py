# Helpers for the st87-sim tests: raw AT bytes over an in-process FakeUART (no lib/st87), and
# a plain TCP peer on 127.0.0.1.

import contextlib
import json
import os
import re
import socket
import threading
import time

from st87sim import FakeUART, FirmwareProfile, Module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The application note's transcript values (shared/ sits beside the repository).
with open(os.path.join(ROOT, "..", "shared", "vectors", "seed_vectors.json")) as _f:
    VECTORS = json.load(_f)

# Short boot and attach so that the suite stays fast; tests of the timing use their own.
FAST = FirmwareProfile(boot_ms=30, attach_ms=20)

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR(?:: [^\r\n]*)?)\r\n")
IPREAD = re.compile(rb"\r\n#IPREAD: (\d+),(\d+),(\d+)\r\n")


class Host:
    def __init__(self, uart):
        self.uart = uart
        self.buf = bytearray()
        self._chunk = bytearray(512)
        self._mv = memoryview(self._chunk)

    # Read once (up to the UART timeout) into self.buf; True when something came.
    def pump(self):
        n = self.uart.readinto(self._mv[:256])
        if n:
            self.buf += self._mv[:n]
        return bool(n)

    # Wait until `pattern` (bytes or compiled regex) is in the buffer; consume everything up
    # to the end of the match and return (consumed bytes, match).
    def expect(self, pattern, timeout=3):
        if isinstance(pattern, bytes):
            pattern = re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            # Match on a copy: a match keeps pointing into the buffer it searched.
            m = pattern.search(bytes(self.buf))
            if m:
                got = m.string[: m.end()]
                del self.buf[: m.end()]
                return got, m
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {pattern.pattern!r} within {timeout} s; got {self.buf!r}"
                )
            self.pump()

    # Everything that arrives until the line is quiet for quiet_s.
    def drain(self, quiet_s=0.1):
        deadline = time.monotonic() + quiet_s
        while time.monotonic() < deadline:
            if self.pump():
                deadline = time.monotonic() + quiet_s
        got = bytes(self.buf)
        self.buf.clear()
        return got

    def send(self, line):
        self.uart.write(line + b"\r")

    # Send a command; return what came up to and including its final result.
    def cmd(self, line, timeout=5):
        self.send(line)
        return self.expect(FINAL, timeout)[0]

    # AT#IPREAD by length: (payload, the bytes after it up to the final result).
    def ipread(self, sock, cid=5):
        self.send(b"AT#IPREAD=%d,%d" % (cid, sock))
        _, m = self.expect(IPREAD)
        n = int(m.group(3))
        deadline = time.monotonic() + 3
        while len(self.buf) < n and time.monotonic() < deadline:
            self.pump()
        payload = bytes(self.buf[:n])
        del self.buf[:n]
        tail, _ = self.expect(FINAL)
        return payload, tail

    def wait_attached(self, timeout=3):
        return self.expect(b"\r\n+CEREG: 1\r\n", timeout)[0]


# A module that has booted and attached, with echo off: (module, host).
@contextlib.contextmanager
def booted(profile=FAST, echo=False, **kw):
    m = Module(profile, **kw)
    try:
        host = Host(FakeUART(m, timeout=20))
        host.wait_attached()
        if not echo:
            host.cmd(b"ATE0")
        yield m, host
    finally:
        m.close()


# A plain TCP peer: echoes what it receives (unless echo=False), can push data to its
# clients and close them, and records what it received.
class TcpPeer:
    def __init__(self, echo=True, host="127.0.0.1"):
        self.echo = echo
        self._listener = socket.socket()
        self._listener.bind((host, 0))
        self._listener.listen(4)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.received = bytearray()
        self.clients = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                self.clients.append(client)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, client):
        client.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data = client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.received += data
            if self.echo:
                client.sendall(data)

    def wait_received(self, n, timeout=3):
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return bytes(self.received)

    # Send to the n-th client; the connect can complete before our accept() returns.
    def push(self, data, client=0, timeout=3):
        deadline = time.monotonic() + timeout
        while len(self.clients) <= client and time.monotonic() < deadline:
            time.sleep(0.01)
        self.clients[client].sendall(data)

    def close_clients(self):
        with self._lock:
            for client in self.clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                client.close()

    def stop(self):
        self._stop.set()
        self.close_clients()
        for thread in self._threads:
            thread.join(timeout=2)
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --- certificates (the PKI itself is tests_host/pki.py) ---

OK = b"\r\nOK\r\n"


# A certificate made with `cryptography`: DER. `issuer` is (certificate, key); None for a
# self-signed one. names: DNS names and IP literals for the subjectAltName.
def make_cert(cn, key, issuer=None, *, ca=False, days=(-1, 30), names=(), extra_names=0):
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    alt = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    # Padding names make a certificate as long as a test needs.
    alt += [x509.DNSName(f"pad{i:04d}.example") for i in range(extra_names)]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.DER)


def write_pem(path, der=None, key=None):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization as ser

    if der is not None:
        data = x509.load_der_x509_certificate(der).public_bytes(ser.Encoding.PEM)
    else:
        data = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


# The AT lines of the hex credential forms.
def certadd(sec, ctype, der):
    return b"AT#TLSCERTADD=%d,%d,%d,%s" % (sec, ctype, len(der), der.hex().encode())


def keyadd_der(sec, der, ktype=128, storage=2, flag=2):
    return b"AT#TLSKEYADD=%d,%d,%d,%d,%d,%s" % (
        sec,
        ktype,
        storage,
        flag,
        len(der),
        der.hex().encode(),
    )


# Radio off, every line answered `OK` at its end (replies with lines before OK are fine),
# radio back on and attached.
def provision(host, lines):
    assert host.cmd(b"AT+CFUN=4") == OK
    host.expect(b"#IPCFG: 5,0,0\r\n")
    for line in lines:
        reply = host.cmd(line)
        assert reply.endswith(OK), (line[:40], reply)
    assert host.cmd(b"AT+CFUN=1") == OK
    host.wait_attached()
