# Helpers for the st87-sim tests: raw AT bytes over an in-process FakeUART (no lib/st87), and
# a plain TCP peer on 127.0.0.1.

import contextlib
import json
import os
import re
import socket
import threading
import time

from peers import stop_process

from st87sim import FakeUART, FirmwareProfile, Module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The application note's transcript values (shared/ sits beside the repository).
with open(os.path.join(ROOT, "..", "shared", "vectors", "seed_vectors.json")) as _f:
    VECTORS = json.load(_f)

# Short boot and attach so that the suite stays fast; tests of the timing use their own.
FAST = FirmwareProfile(boot_ms=30, attach_ms=20)

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR(?:: [^\r\n]*)?)\r\n")
IPREAD = re.compile(rb"\r\n#IPREAD: (\d+),(\d+),(\d+)\r\n")


# What the background peers share: `with peer:` stops it at the end.
class _Peer:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# Poll done() every 10 ms until it is true or timeout seconds have passed.
def _until(done, timeout):
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)


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
class TcpPeer(_Peer):
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
        try:
            client.settimeout(0.05)
        except OSError:
            return  # stop() closed it before this thread got going
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
        _until(lambda: len(self.received) >= n, timeout)
        return bytes(self.received)

    # Send to the n-th client; the connect can complete before our accept() returns.
    def push(self, data, client=0, timeout=3):
        _until(lambda: len(self.clients) > client, timeout)
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


# --- datagram peers ---


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A plain UDP peer on 127.0.0.1: records every datagram and, with echo, sends it back as is.
class UdpEchoPeer(_Peer):
    def __init__(self, echo=True):
        self.echo = echo
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.received = []  # (datagram, sender)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            self.received.append((data, addr))
            if self.echo:
                self.sock.sendto(data, addr)

    def wait_received(self, n, timeout=3):
        _until(lambda: len(self.received) >= n, timeout)
        return [data for data, _ in self.received]

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


# A minimal DTLS 1.2 echo server on python-mbedtls, for the st87-sim DTLS tests: PSK suites
# with psk=(identity, key), ECDHE-ECDSA with cert=(certificate DER, key DER), and client
# certificates required (against client_ca DER) when client_ca is given. Cookies (a
# HelloVerifyRequest) as python-mbedtls servers always do. Each client address gets its own
# session; every application record is echoed back as one datagram (echo=True), and is kept in
# `received` in order.
#
# NOTE: python-mbedtls servers keep no session cache, so this peer never resumes a session;
# the resumption tests use openssl s_server.
class DtlsEchoPeer(_Peer):
    _TICK_S = 0.01  # how often the handshakes' retransmission timers are looked at

    def __init__(self, psk=None, cert=None, client_ca=None, echo=True):
        from mbedtls import exceptions, pk, tls, x509

        self._tls = tls
        self._error = exceptions.TLSError
        options = {
            "lowest_supported_version": tls.DTLSVersion.DTLSv1_2,
            "highest_supported_version": tls.DTLSVersion.DTLSv1_2,
            "handshake_timeout_min": 0.1,
            "handshake_timeout_max": 2.0,
            "validate_certificates": client_ca is not None,
        }
        if psk is not None:
            options["pre_shared_key_store"] = {psk[0]: psk[1]}
        if cert is not None:
            options["certificate_chain"] = (
                (x509.CRT.from_DER(cert[0]),),
                pk.ECC.from_DER(cert[1]),
            )
        if client_ca is not None:
            options["trust_store"] = tls.TrustStore([x509.CRT.from_DER(client_ca)])
        self._ctx = tls.ServerContext(tls.DTLSConfiguration(**options))
        self.echo = echo
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = []  # application data, one entry per record
        self.handshakes = 0  # completed
        self.failures = []  # handshake errors, as text
        self.closed = 0  # close_notify (or fatal alerts) received from clients
        self._clients = {}  # addr -> [buffer, established]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], self._TICK_S)
            with self._lock:
                if ready:
                    try:
                        data, addr = self.sock.recvfrom(65535)
                    except OSError:
                        continue
                    self._datagram(addr, data)
                for addr, client in list(self._clients.items()):
                    if not client[1]:
                        self._step(addr, client)

    def _new_buffer(self, addr):
        buf = self._ctx.wrap_buffers()
        buf.setcookieparam(f"{addr[0]}:{addr[1]}".encode())
        return buf

    def _datagram(self, addr, data):
        client = self._clients.get(addr)
        if client is None:
            client = self._clients[addr] = [self._new_buffer(addr), False]
        client[0].receive_from_network(data)
        if client[1]:
            self._read(addr, client)
        else:
            self._step(addr, client)

    def _step(self, addr, client):
        tls = self._tls
        buf = client[0]
        while True:
            try:
                buf.do_handshake()
            except tls.WantReadError:
                break
            except tls.WantWriteError:
                self._flush(addr, buf)
                continue
            except tls.HelloVerifyRequest:
                # The context was reset: the client's next hello carries the cookie.
                self._flush(addr, buf)
                client[0] = self._new_buffer(addr)
                return
            except self._error as exc:
                self._flush(addr, buf)  # the alert
                self.failures.append(str(exc))
                del self._clients[addr]
                return
            if buf._handshake_state is tls.HandshakeStep.HANDSHAKE_OVER:
                self._flush(addr, buf)
                client[1] = True
                self.handshakes += 1
                self._read(addr, client)
                return
        self._flush(addr, buf)

    def _read(self, addr, client):
        tls = self._tls
        buf = client[0]
        room = bytearray(16384)
        while True:
            try:
                n = buf.readinto(room, len(room))
            except (tls.WantReadError, tls.WantWriteError):
                break
            except tls.RaggedEOF:
                continue
            except self._error:
                self.closed += 1
                del self._clients[addr]
                return
            message = bytes(room[:n])
            self.received.append(message)
            if self.echo:
                buf.write(message)
                self._flush(addr, buf)
        self._flush(addr, buf)  # a retransmitted last flight of ours, if the client asked

    def _flush(self, addr, buf):
        pending = buf.peek_outgoing(65535)
        if pending:
            buf.consume_outgoing(len(pending))
            self.sock.sendto(pending, addr)

    def _latest(self):
        for addr, client in reversed(list(self._clients.items())):
            if client[1]:
                return addr, client
        raise AssertionError("no DTLS client is connected")

    # Send one record (one datagram) to the most recent client.
    def push(self, data):
        with self._lock:
            addr, client = self._latest()
            client[0].write(data)
            self._flush(addr, client[0])

    # End the most recent client's session with a close_notify.
    def close_client(self):
        with self._lock:
            addr, client = self._latest()
            client[0].shutdown()
            self._flush(addr, client[0])
            del self._clients[addr]

    def wait(self, what, n, timeout=3):
        def done():
            got = getattr(self, what)
            return (len(got) if isinstance(got, list) else got) >= n

        _until(done, timeout)
        return getattr(self, what)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


# `openssl s_server -dtls1_2` on a free UDP port of 127.0.0.1. Unlike peers.OpenSSLServer its
# stdin stays open (s_server ends when its stdin does, and it has no -rev for DTLS): a test
# sends text to the client with say(); `output` is everything s_server printed, which shows
# what it received and whether it reused a session.
class OpenSSLDtlsServer:
    def __init__(self, args):
        self.args = list(args)
        self.port = None
        self.proc = None
        self._out = bytearray()
        self._reader = None

    @classmethod
    def psk(cls, psk_hex, identity, extra=()):
        return cls(["-nocert", "-psk", psk_hex, "-psk_identity", identity, *extra])

    @property
    def output(self):
        return bytes(self._out).decode(errors="replace")

    def start(self):
        import subprocess

        for _ in range(5):
            self.port = free_udp_port()
            cmd = ["openssl", "s_server", "-dtls1_2", "-accept", f"127.0.0.1:{self.port}"]
            self.proc = subprocess.Popen(
                cmd + self.args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            self._out.clear()
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
            if self.wait_output("ACCEPT", timeout=10):
                return self
            self.stop()
        raise RuntimeError("openssl s_server -dtls1_2 did not start: " + self.output)

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            self._out += chunk

    # Wait until `text` was printed `count` times; True when it was.
    def wait_output(self, text, count=1, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.output.count(text) >= count:
                return True
            if self.proc.poll() is not None and not self._reader.is_alive():
                return self.output.count(text) >= count
            time.sleep(0.02)
        return False

    # A line to the connected client (one DTLS record).
    def say(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self):
        if self.proc is None:
            return
        stop_process(self.proc)
        self._reader.join(timeout=2)
        self.proc.stdin.close()
        self.proc.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
