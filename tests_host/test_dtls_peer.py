# DTLSEchoServer (tests_host/dtls_peer.py) against independent clients: python-mbedtls and
# openssl s_client. PSK and ECDHE-ECDSA handshakes, data both ways, the one-suite
# restriction, cookies, retransmission, clients one after another, and session resumption.

import os
import select
import socket
import subprocess
import time

import dtls_peer
import pytest
from dtls_peer import DTLSEchoServer, resume_session, save_session
from mbedtls import exceptions as mbedtls_errors
from mbedtls import pk, tls, x509
from pki import PKI

IDENTITY = "Client_identity"
PSK = bytes.fromhex("8bf49643a691b9835a79c7c2a2de44ac0a4e2f1ec816c3ad1cea92a64d3127aa")
PSK_CCM8 = "TLS-PSK-WITH-AES-128-CCM-8"
ECDSA_CCM = "TLS-ECDHE-ECDSA-WITH-AES-128-CCM"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


# A python-mbedtls DTLS 1.2 client on its own UDP socket (or one it is given, to reconnect
# from the same port).
class Client:
    def __init__(self, port, *, suites=None, host=None, session=None, sock=None, **creds):
        config = {"validate_certificates": "ca" in creds}
        if "psk" in creds:
            config["pre_shared_key"] = (creds.get("identity", IDENTITY), creds["psk"])
        if "ca" in creds:
            config["trust_store"] = tls.TrustStore([x509.CRT.from_DER(creds["ca"])])
        if "cert" in creds:
            config["certificate_chain"] = (
                (x509.CRT.from_DER(creds["cert"]),),
                pk.ECC.from_DER(creds["key"]),
            )
        if suites:
            config["ciphers"] = tuple(suites)
        self.buf = tls.ClientContext(tls.DTLSConfiguration(**config)).wrap_buffers(host)
        if session is not None:
            resume_session(self.buf, session)
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.received = 0  # datagrams from the server

    def _flush(self):
        while True:
            data = self.buf.peek_outgoing(65535)
            if not data:
                return
            self.sock.send(data)
            self.buf.consume_outgoing(len(data))

    def _recv(self, timeout):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        self.received += 1
        return self.sock.recv(65535)

    # Run the handshake until it waits for the server (one flight out).
    def advance(self):
        while True:
            try:
                self.buf.do_handshake()
            except tls.WantWriteError:
                self._flush()
            except tls.WantReadError:
                self._flush()
                return

    def handshake(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.buf._handshake_state is not tls.HandshakeStep.HANDSHAKE_OVER:
            if time.monotonic() > deadline:
                raise TimeoutError("no DTLS handshake")
            try:
                self.buf.do_handshake()
            except tls.WantReadError:
                self._flush()
                data = self._recv(0.05)
                if data:
                    self.buf.receive_from_network(data)
            except tls.WantWriteError:
                self._flush()
        self._flush()
        return self

    # One datagram out, the server's answer back.
    def exchange(self, datagram, timeout=5):
        self.buf.write(datagram)
        self._flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self._recv(0.1)
            if data is None:
                continue
            self.buf.receive_from_network(data)
            try:
                return self.buf.read(65535)
            except tls.WantReadError:
                continue
        raise TimeoutError("no answer")

    def close(self, keep_socket=False):
        self.buf.shutdown()
        self._flush()
        if not keep_socket:
            self.sock.close()


def psk_client(server, **kw):
    return Client(server.port, psk=PSK, identity=IDENTITY, **kw)


def test_psk_handshake_and_data_both_ways():
    with DTLSEchoServer(psk=PSK, identity=IDENTITY, suite=PSK_CCM8) as server:
        client = psk_client(server).handshake()
        assert client.buf.cipher() == PSK_CCM8
        assert client.exchange(b"hello over DTLS") == b"SLTD revo olleh"
        # A datagram is a message: bytes that would frame text or AT lines pass untouched.
        assert client.exchange(b"\r\nOK\r\n\x00\xff") == b"\xff\x00\n\rKO\n\r"
        client.close()
        hs = server.wait_handshake()
        time.sleep(0.2)  # the close_notify
    assert hs.ok and hs.error is None
    assert (hs.suite, hs.suite_code, hs.version) == (PSK_CCM8, 0xC0A8, "DTLSv1_2")
    assert hs.hello_verify and not hs.resumed
    assert hs.datagrams == 3  # ClientHello, ClientHello with the cookie, the client's flight
    assert hs.data == [b"hello over DTLS", b"\r\nOK\r\n\x00\xff"]
    assert hs.closed == "close_notify"
    assert 0xC0A8 in hs.offered and hs.client_cid is None


def test_ecdhe_ecdsa_handshake_checks_the_server_certificate(pki):
    with DTLSEchoServer.for_pki(pki, suite=ECDSA_CCM) as server:
        client = Client(server.port, ca=pki.der("ca"), host="localhost").handshake()
        assert client.buf.cipher() == ECDSA_CCM
        assert client.exchange(b"abc") == b"cba"
        client.close()
        hs = server.wait_handshake()
    assert hs.ok and (hs.suite, hs.suite_code) == (ECDSA_CCM, 0xC0AC)

    # A client trusting another CA refuses the server.
    with DTLSEchoServer.for_pki(pki, suite=ECDSA_CCM) as server:
        client = Client(server.port, ca=pki.der("other_ca"), host="localhost")
        with pytest.raises(mbedtls_errors.TLSError):
            client.handshake()
        client.sock.close()


def test_flights_fit_the_mtu(pki):
    sizes = []
    with DTLSEchoServer.for_pki(pki, suite=ECDSA_CCM, mtu=300) as server:
        client = Client(server.port, ca=pki.der("ca"), host="localhost")
        recv = client._recv

        def measured(timeout):
            data = recv(timeout)
            if data is not None:
                sizes.append(len(data))
            return data

        client._recv = measured
        assert client.handshake().exchange(b"small") == b"llams"
        client.close()
    # The certificate alone is longer than 300 bytes: it came in fragments.
    assert len(sizes) > 3 and max(sizes) <= 300


def test_client_certificate_required_when_asked(pki):
    with DTLSEchoServer.for_pki(pki, suite=ECDSA_CCM, verify_client=True) as server:
        creds = {"ca": pki.der("ca"), "cert": pki.der("client"), "key": pki.key_der("client")}
        client = Client(server.port, host="localhost", **creds).handshake()
        assert client.exchange(b"mutual") == b"lautum"
        client.close()
        assert server.wait_handshake(0).ok

        # Without a certificate of its own the client is refused, and the server says why.
        # NOTE: mbed TLS sends no alert for this one: the client only sees no answer.
        client = Client(server.port, ca=pki.der("ca"), host="localhost")
        with pytest.raises(TimeoutError):
            client.handshake(timeout=2)
        client.sock.close()
        hs = server.wait_handshake(1)
    assert not hs.ok and "no client certification" in hs.error.lower()


def test_only_the_one_suite_is_negotiated():
    with DTLSEchoServer(psk=PSK, identity=IDENTITY, suite=PSK_CCM8) as server:
        client = psk_client(server, suites=["TLS-PSK-WITH-AES-128-GCM-SHA256"])
        with pytest.raises(mbedtls_errors.TLSError):
            client.handshake(timeout=5)
        client.sock.close()
        hs = server.wait_handshake()
        assert not hs.ok and hs.suite is None
        assert hs.offered == (0x00A8, 0x00FF)  # GCM, and the renegotiation SCSV
        assert "ciphersuite" in hs.error.lower()

        # The suite it allows still works, on the same server.
        client = psk_client(server, suites=["TLS-PSK-WITH-AES-128-GCM-SHA256", PSK_CCM8])
        assert client.handshake().buf.cipher() == PSK_CCM8
        client.close()
        assert server.wait_handshake(1).ok
    with pytest.raises(ValueError, match="not a suite"):
        DTLSEchoServer(psk=PSK, identity=IDENTITY, suite="TLS-PSK-WITH-NOTHING")


def test_wrong_psk_fails():
    with DTLSEchoServer(psk=PSK, identity=IDENTITY, suite=PSK_CCM8) as server:
        client = Client(server.port, psk=bytes(32), identity=IDENTITY)
        with pytest.raises((mbedtls_errors.TLSError, TimeoutError)):
            client.handshake(timeout=5)
        client.sock.close()
        hs = server.wait_handshake()
    assert not hs.ok and hs.error


def test_clients_one_after_another_and_a_reconnect_from_the_same_port():
    with DTLSEchoServer(psk=PSK, identity=IDENTITY, suite=PSK_CCM8) as server:
        for i in range(3):
            client = psk_client(server).handshake()
            assert client.exchange(b"client %d" % i) == (b"client %d" % i)[::-1]
            client.close()
        # The same UDP socket (as a module keeps its port) handshakes again after a close.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        first = psk_client(server, sock=sock).handshake()
        first.close(keep_socket=True)
        again = psk_client(server, sock=sock).handshake()
        assert again.exchange(b"again") == b"niaga"
        # ... and without a close before it: the new ClientHello replaces the old session.
        third = psk_client(server, sock=sock).handshake()
        assert third.exchange(b"third") == b"driht"
        third.close()
        server.wait_handshake(5)
    assert [hs.ok for hs in server.handshakes] == [True] * 6
    assert len({hs.peer for hs in server.handshakes[:3]}) == 3
    assert len({hs.peer for hs in server.handshakes[3:]}) == 1
    assert server.handshakes[4].closed == "replaced by a new ClientHello"


def test_server_retransmits_a_lost_flight():
    with DTLSEchoServer(psk=PSK, identity=IDENTITY, suite=PSK_CCM8, timeout=(0.5, 10)) as server:
        client = psk_client(server)
        client.advance()  # ClientHello
        client.buf.receive_from_network(client._recv(5))  # HelloVerifyRequest
        client.advance()  # ClientHello with the cookie
        # The server's flight comes; pretend it was lost, and stay silent (no client timer).
        assert client._recv(5) is not None
        again = client._recv(3)
        assert again is not None, "the server did not retransmit its flight"
        # The retransmitted flight is enough to finish.
        client.buf.receive_from_network(again)
        client.handshake()
        assert client.exchange(b"late") == b"etal"
        client.close()
        hs = server.wait_handshake()
    assert hs.ok and hs.datagrams == 3


def test_second_connect_resumes_the_session_python_mbedtls(pki):
    with DTLSEchoServer(psk=PSK, identity=IDENTITY, suite=PSK_CCM8) as server:
        first = psk_client(server).handshake()
        session = save_session(first.buf)
        first.close()
        second = psk_client(server, session=session).handshake()
        assert second.exchange(b"resumed") == b"demuser"
        second.close()
        fresh = psk_client(server).handshake()  # no session offered: a full handshake
        fresh.close()
        server.wait_handshake(2)
    assert [hs.resumed for hs in server.handshakes] == [False, True, False]
    assert server.handshakes[1].client_session_id == server.handshakes[0].server_session_id

    # Certificates too; a server without the cache makes a full handshake instead.
    for resumption in (True, False):
        with DTLSEchoServer.for_pki(pki, suite=ECDSA_CCM, resumption=resumption) as server:
            first = Client(server.port, ca=pki.der("ca"), host="localhost").handshake()
            session = save_session(first.buf)
            first.close()
            second = Client(server.port, ca=pki.der("ca"), host="localhost", session=session)
            assert second.handshake().exchange(b"xy") == b"yx"
            second.close()
            assert server.wait_handshake(1).resumed is resumption


def test_second_connect_resumes_the_session_openssl(tmp_path):
    # An independent implementation: s_client saves the session, then offers it again.
    with DTLSEchoServer(psk=PSK, identity=IDENTITY, suite=PSK_CCM8) as server:
        outputs = []
        for extra in (["-sess_out", tmp_path / "s"], ["-sess_in", tmp_path / "s"]):
            outputs.append(s_client(server.port, [str(a) for a in extra]))
        server.wait_handshake(1)
    assert "New, TLSv1.2, Cipher is PSK-AES128-CCM8" in outputs[0]
    assert "Reused, TLSv1.2, Cipher is PSK-AES128-CCM8" in outputs[1]
    assert all("\nolleh" in out for out in outputs)
    assert [hs.resumed for hs in server.handshakes] == [False, True]


# openssl s_client over DTLS 1.2 with the PSK: sends "hello", returns its output once the
# reversed line came back.
def s_client(port, extra, timeout=10):
    cmd = ["openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}"]
    cmd += ["-psk", PSK.hex(), "-psk_identity", IDENTITY, "-cipher", "PSK-AES128-CCM8"] + extra
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out = b""
    try:
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while b"\nolleh" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.1)
            if ready:
                out += os.read(proc.stdout.fileno(), 65536)
        proc.stdin.close()  # end of input: s_client closes the session
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return out.decode(errors="replace")


def test_client_hello_fields_are_read_off_the_wire():
    # A ClientHello as a client that proposes a Connection ID (RFC 9146) would send it; no
    # client here can (mbed TLS 2.28 as bundled has no CID), so it is built by hand.
    cid = bytes.fromhex("AABBCCDD01")  # the note's example
    ext = (54).to_bytes(2, "big") + (len(cid) + 1).to_bytes(2, "big") + bytes([len(cid)]) + cid
    body = b"\xfe\xfd" + bytes(32) + b"\x03sid" + b"\x02ck" + b"\x00\x04\xc0\xa8\x00\xff"
    body += b"\x01\x00" + len(ext).to_bytes(2, "big") + ext
    n = len(body).to_bytes(3, "big")
    message = b"\x01" + n + b"\x00\x01" + b"\x00\x00\x00" + n + body
    record = b"\x16\xfe\xfd" + bytes(8) + len(message).to_bytes(2, "big") + message
    assert dtls_peer._client_hello(record) == body
    hs = dtls_peer.Handshake(peer=("127.0.0.1", 1))
    dtls_peer._note_client_hello(hs, body)
    assert (hs.client_session_id, hs.offered, hs.client_cid) == (b"sid", (0xC0A8, 0xFF), cid)
    # Records of epoch 1 are encrypted: never read as a hello.
    assert dtls_peer._client_hello(record[:3] + b"\x00\x01" + record[5:]) is None
