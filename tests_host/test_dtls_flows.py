# DTLS 1.2 through the library and the emulated module (in-process), against a python-mbedtls
# DTLS peer: PSK and ECDHE-ECDSA sessions both ways, the handshake under 20 % datagram loss,
# and session resumption on a second connect.

import pytest
from dtls_peer import DTLSEchoServer
from pki import PKI

import st87
from st87sim import FakeUART, Module

PSK = bytes.fromhex("8bf49643a691b9835a79c7c2a2de44ac0a4e2f1ec816c3ad1cea92a64d3127aa")
IDENTITY = "Client_identity"
CID = bytes.fromhex("AABBCCDD01")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


def modem_for(module, **creds):
    modem = st87.Modem(FakeUART(module, timeout=20))
    modem.start(timeout_ms=10000)
    modem.tls.write(modem.tls.plan(0, **creds))
    modem.attach(timeout_ms=10000)
    return modem


def exchange(modem, port, datagrams, cid=None):
    with modem.socket(st87.UDP, sec_id=0) as sock:
        sock.settimeout(15)
        sock.connect(("127.0.0.1", port), cid=cid)
        got = []
        for d in datagrams:
            sock.send(d)
            got.append(sock.recv(1500))
        negotiated = sock.cid_negotiated
    return got, negotiated


def test_dtls_psk_both_ways_with_a_connection_id(tmp_path):
    with DTLSEchoServer(psk=PSK, identity=IDENTITY) as server, Module(
        state_path=str(tmp_path / "its.json")
    ) as module:
        modem = modem_for(module, psk=PSK, identity=IDENTITY)
        sent = [b"first datagram", b"x\r\nOK\r\n", bytes(range(256)) * 5]
        got, negotiated = exchange(modem, server.port, sent, cid=CID)
        assert got == [bytes(reversed(d)) for d in sent]  # boundaries kept, both ways
        hs = server.wait_handshake()
        assert hs.ok and hs.client_cid in (None, CID)
        # The module reports the Connection ID truthfully: negotiated only if it was.
        assert negotiated is (hs.client_cid == CID and negotiated)
        assert module.open_sockets() == []


@pytest.mark.parametrize("mutual", [False, True])
def test_dtls_ecdhe_ecdsa_both_ways(tmp_path, pki, mutual):
    creds = {"ca": pki.der("ca")}
    if mutual:
        creds.update(key=pki.key_der("client"), cert=pki.der("client"))
    with DTLSEchoServer.for_pki(pki, verify_client=mutual) as server, Module(
        state_path=str(tmp_path / "its.json")
    ) as module:
        modem = modem_for(module, **creds)
        got, _ = exchange(modem, server.port, [b"sensor 7: 21.5 C"])
        assert got == [b"C 5.12 :7 rosnes"]
        assert server.wait_handshake().suite.startswith("TLS-ECDHE-ECDSA-")


def test_handshake_completes_with_twenty_percent_loss(tmp_path):
    with DTLSEchoServer(psk=PSK, identity=IDENTITY, timeout=(0.2, 4.0)) as server, Module(
        state_path=str(tmp_path / "its.json"), loss=0.2, loss_seed=7
    ) as module:
        modem = modem_for(module, psk=PSK, identity=IDENTITY)
        with modem.socket(st87.UDP, sec_id=0) as sock:
            sock.settimeout(30)
            sock.connect(("127.0.0.1", server.port))
        record = module.handshakes[-1]
        assert record.protocol.startswith("DTLS")
        assert server.wait_handshake().ok
        assert record.dropped > 0 and record.retransmissions > 0


def test_second_connect_resumes_the_session(tmp_path):
    with DTLSEchoServer(psk=PSK, identity=IDENTITY) as server, Module(
        state_path=str(tmp_path / "its.json")
    ) as module:
        modem = modem_for(module, psk=PSK, identity=IDENTITY)
        exchange(modem, server.port, [b"one"])
        first = server.wait_handshake(0)
        exchange(modem, server.port, [b"two"])
        second = server.wait_handshake(1)
        full, short = module.handshakes[-2:]
    assert not first.resumed and second.resumed  # as the server saw it
    assert not full.resumed and short.resumed  # as the module saw it
    # The abbreviated handshake is shorter: fewer round trips and fewer handshake records.
    assert short.round_trips < full.round_trips
    assert short.records_sent < full.records_sent
