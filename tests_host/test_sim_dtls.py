# st87-sim: UDP sockets and DTLS 1.2 (application note 5.3) in raw AT bytes: real handshakes
# against a python-mbedtls DTLS echo server (PSK and ECDHE-ECDSA with the test PKI) and
# `openssl s_server -dtls1_2`, datagram boundaries, the Connection ID as the module reports it,
# retransmission under injected loss, and session resumption for TLS 1.2 and DTLS 1.2.

import re

import pytest
from peers import OpenSSLServer
from pki import PKI
from sim_helpers import (
    OK,
    VECTORS,
    DtlsEchoPeer,
    OpenSSLDtlsServer,
    UdpEchoPeer,
    booted,
    certadd,
    keyadd_der,
    provision,
)

from st87sim.dtls import Loss
from st87sim.handshake import CID_EXTENSIONS

PSK_HEX = VECTORS["psk_4_2"]
IDENT_HEX = VECTORS["psk_identity_4_2_hex"]
IDENT = VECTORS["psk_identity_4_2_text"]
PSK = (IDENT, bytes.fromhex(PSK_HEX))
PSK_LINES = [
    b"AT#TLSKEYADD=0,1,2,4,32," + PSK_HEX.encode(),
    b"AT#TLSCERTADD=0,2,15," + IDENT_HEX.encode(),
]

E3 = b"\r\n+CME ERROR: 3\r\n"
E2152 = b"\r\n+CME ERROR: 2152\r\n"
E2154 = b"\r\n+CME ERROR: 2154\r\n"
IPRECV_LEN = re.compile(rb"\r\n#IPRECV: 5,(\d),(\d+)\r\n")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def psk_peer():
    with DtlsEchoPeer(psk=PSK) as peer:
        yield peer


def udp_socket(host, sec=0, urc=2):
    sec_field = b",%d" % sec if sec is not None else b""
    reply = host.cmd(b"AT#SOCKETCREATE=5,0,UDP,5000,60,60,%d%s" % (urc, sec_field))
    return int(re.search(rb"#SOCKETCREATE: (\d)", reply).group(1))


def dtls_connect(host, port, sock=0, target=b"127.0.0.1", extra=b""):
    return host.cmd(b"AT#DTLSCONNECT=5,%d,%s,%d%s" % (sock, target, port, extra), timeout=15)


def send(host, port, line, sock=0, target=b"127.0.0.1"):
    return host.cmd(b"AT#IPSENDUDP=5,%d,%s,%d,0,%s" % (sock, target, port, line))


# The next n frames, each announced with its length (<urc> 2), then read back by AT#IPREAD.
# All URCs first: AT#IPREAD's reply is read past any URC that comes before it.
def frames(host, n=1, sock=0, timeout=5):
    sizes = []
    for _ in range(n):
        _, urc = host.expect(IPRECV_LEN, timeout)
        assert int(urc.group(1)) == sock
        sizes.append(int(urc.group(2)))
    got = []
    for size in sizes:
        payload, tail = host.ipread(sock)
        assert tail == b"\r\n\r\nOK\r\n"
        assert len(payload) == size
        got.append(payload)
    return got


def next_frame(host, sock=0, timeout=5):
    return frames(host, 1, sock, timeout)[0]


def test_psk_session_both_ways_with_every_send_type(psk_peer):
    with booted() as (m, host):
        provision(host, PSK_LINES)
        sock = udp_socket(host)
        assert dtls_connect(host, psk_peer.port) == OK
        assert host.cmd(b"AT#DTLSCONNECT?") == b"\r\n#DTLSCONNECT: 5,0,1,0\r\n" + OK
        assert host.cmd(b"AT#SOCKETCREATE?") == b"\r\n#SOCKETCREATE: 0,5,UDP,1\r\n" + OK

        assert send(host, psk_peer.port, b"0,text inline") == OK
        assert next_frame(host) == b"text inline"
        assert send(host, psk_peer.port, b"2,000D0A4F4B0D0AFF") == OK
        assert next_frame(host) == b"\x00\r\nOK\r\n\xff"
        payload = bytes(range(256)) * 2
        assert send(host, psk_peer.port, b"1,%d" % len(payload)) == OK
        host.uart.write(payload[:100])
        host.uart.write(payload[100:])
        assert host.expect(OK)[0] == OK
        assert next_frame(host) == payload
        assert psk_peer.received == [b"text inline", b"\x00\r\nOK\r\n\xff", payload]

        [record] = m.handshakes
        assert (record.protocol, record.sec_id, record.ok) == ("DTLS 1.2", 0, True)
        assert record.peer == ("127.0.0.1", psk_peer.port)
        assert "PSK-WITH-" in record.cipher
        # ClientHello, the HelloVerifyRequest, ClientHello with the cookie, the server's
        # flight, the client's last flight, and the server's ChangeCipherSpec and Finished.
        assert (record.flights, record.round_trips, record.resumed) == (6, 3, False)
        assert record.retransmissions == record.dropped == 0

        assert host.cmd(b"AT#SOCKETCLOSE=5,%d" % sock) == OK
        assert psk_peer.wait("closed", 1) == 1  # close_notify
        assert m.open_sockets() == []


def test_the_notes_5_3_flow_with_its_connection_id(psk_peer, caplog):
    caplog.set_level("INFO", logger="st87sim")
    routes = {"192.168.21.4:4433": ("127.0.0.1", psk_peer.port)}
    with booted(routes=routes) as (m, host):
        provision(host, PSK_LINES)
        # Errata 6: the note creates the socket as TCP; it must be UDP.
        reply = host.cmd(b"AT#SOCKETCREATE=5,0,UDP,5000,60,60,1,0")
        assert reply == b"\r\n#SOCKETCREATE: 0\r\n" + OK
        assert host.cmd(b"AT#DTLSCONNECT=5,0,192.168.21.4,4433,5,AABBCCDD01", timeout=15) == OK
        # Errata 7: the stray space after "=".
        reply = host.cmd(b"AT#IPSENDUDP= 5,0,192.168.21.4,4433,0,0,ST87M_NBIOT_DTLS_test  ")
        assert reply == OK
        assert host.expect(b"#IPRECV: 5,0\r\n")[0] == b"\r\n#IPRECV: 5,0\r\n"
        assert host.ipread(0) == (b"ST87M_NBIOT_DTLS_test", b"\r\n\r\nOK\r\n")

        # The proposed CID is recorded, and reported as not negotiated, because it was not:
        # mbed TLS as python-mbedtls bundles it has no Connection ID support, so the
        # ClientHello carried no connection_id extension and the server answered none.
        assert host.cmd(b"AT#DTLSCONNECT?") == b"\r\n#DTLSCONNECT: 5,0,1,0\r\n" + OK
        [record] = m.handshakes
        assert record.cid_proposed == bytes.fromhex("AABBCCDD01")
        assert record.cid_negotiated is False
        assert record.client_extensions and not CID_EXTENSIONS & set(record.client_extensions)
        assert not CID_EXTENSIONS & set(record.server_extensions)
        assert "CID AABBCCDD01 proposed, not negotiated" in caplog.text

        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        assert psk_peer.wait("closed", 1) == 1


@pytest.mark.parametrize(
    "args",
    [
        b"5,AABBCCDD",  # 4 bytes of hex for a length of 5
        b"5,AABBCCDD0",  # odd length (the note's own typo, errata 6)
        b"0,",
        b"33," + b"AB" * 33,
        b"2,GGGG",
        b"5",
    ],
)
def test_a_connection_id_must_match_its_length(psk_peer, args):
    with booted() as (m, host):
        provision(host, PSK_LINES)
        udp_socket(host)
        assert dtls_connect(host, psk_peer.port, extra=b"," + args) == E3
        assert m.handshakes == []  # refused before any datagram went out
        assert dtls_connect(host, psk_peer.port, extra=b",32," + b"C1" * 32) == OK
        assert m.handshakes[0].cid_proposed == b"\xc1" * 32


def test_dtlsconnect_needs_a_udp_socket_with_a_security_profile(psk_peer):
    with booted() as (m, host):
        provision(host, PSK_LINES)
        plain = udp_socket(host, sec=None)
        assert dtls_connect(host, psk_peer.port, sock=plain) == E3
        host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1,0")
        assert dtls_connect(host, psk_peer.port, sock=1) == E3
        assert dtls_connect(host, psk_peer.port, sock=4) == b"\r\n+CME ERROR: 2104\r\n"
        sec = udp_socket(host)
        assert dtls_connect(host, psk_peer.port, sock=sec) == OK
        assert dtls_connect(host, psk_peer.port, sock=sec) == E3  # already up
        reply = host.cmd(b"AT#DTLSCONNECT?")
        assert reply == b"\r\n#DTLSCONNECT: 5,0,0,0\r\n\r\n#DTLSCONNECT: 5,2,1,0\r\n" + OK


def test_a_failed_handshake_is_2152_and_keeps_the_socket(psk_peer):
    with booted() as (m, host):
        provision(host, [b"AT#TLSKEYADD=0,1,2,4,32," + b"00" * 32, PSK_LINES[1]])
        sock = udp_socket(host)
        assert dtls_connect(host, psk_peer.port) == E2152
        [info] = m.open_sockets()
        assert (info.id, info.proto, info.state, info.sec_id) == (sock, "UDP", "created", 0)
        assert host.cmd(b"AT#DTLSCONNECT?") == b"\r\n#DTLSCONNECT: 5,0,0,0\r\n" + OK
        assert send(host, psk_peer.port, b"0,x") == E2154
        assert m.handshakes[0].ok is False and "DTLS 1.2" in m.handshakes[0].reason
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK


def test_a_silent_peer_times_out_after_the_retransmissions(psk_peer):
    silent = UdpEchoPeer(echo=False)
    with silent, booted(dtls_timeout_ms=(20, 80)) as (m, host):
        provision(host, PSK_LINES)
        udp_socket(host)
        assert dtls_connect(host, silent.port) == E2152
        [record] = m.handshakes
        # 20, 40, 80 ms: the first ClientHello and two more.
        assert record.retransmissions == 2
        assert len(silent.received) == 3
        assert [s.state for s in m.open_sockets()] == ["created"]


@pytest.mark.parametrize("mutual", [False, True], ids=["server-auth", "mutual"])
def test_ecdhe_ecdsa_with_the_pki(pki, mutual):
    client_ca = pki.der("ca") if mutual else None
    peer = DtlsEchoPeer(cert=(pki.der("server"), pki.key_der("server")), client_ca=client_ca)
    lines = [certadd(0, 1, pki.der("ca"))]
    if mutual:
        lines += [keyadd_der(0, pki.key_der("client")), certadd(0, 0, pki.der("client"))]
    with peer, booted() as (m, host):
        provision(host, lines)
        udp_socket(host)
        assert dtls_connect(host, peer.port, target=b"127.0.0.1") == OK
        assert send(host, peer.port, b"0,certified") == OK
        assert next_frame(host) == b"certified"
        assert m.handshakes[0].cipher.startswith("TLS-ECDHE-ECDSA-WITH-")


@pytest.mark.parametrize(
    "case",
    ["wrong CA", "client certificate asked, none held", "host name"],
)
def test_ecdhe_ecdsa_failures_are_2152(pki, case, caplog):
    caplog.set_level("INFO", logger="st87sim")
    client_ca = pki.der("ca") if case.startswith("client") else None
    peer = DtlsEchoPeer(cert=(pki.der("server"), pki.key_der("server")), client_ca=client_ca)
    ca = pki.der("other_ca") if case == "wrong CA" else pki.der("ca")
    dns = {"device.example": "127.0.0.1"}
    target = b"device.example" if case == "host name" else b"127.0.0.1"
    with peer, booted(dns=dns) as (m, host):
        provision(host, [certadd(0, 1, ca)])
        udp_socket(host)
        assert dtls_connect(host, peer.port, target=target) == E2152
        assert [s.state for s in m.open_sockets()] == ["created"]
    assert "DTLS handshake with" in caplog.text


def test_twenty_percent_loss_still_completes_with_retransmissions():
    # Seed 8 loses the first ClientHello, so the client's timer has to resend it; which
    # datagrams are lost depends on the seed only (each direction draws in its own order).
    with DtlsEchoPeer(psk=PSK) as peer, booted(loss=0.2, loss_seed=8) as (m, host):
        assert m.loss == 0.2
        provision(host, PSK_LINES)
        udp_socket(host)
        assert dtls_connect(host, peer.port) == OK
        [record] = m.handshakes
        assert record.ok and record.dropped >= 1 and record.retransmissions >= 1
        assert record.datagrams_sent > 3  # more than a loss-free handshake sends
        # The session works; with the loss switched off no datagram can go missing.
        m.loss = 0.0
        assert send(host, peer.port, b"0,after the storm") == OK
        assert next_frame(host) == b"after the storm"


def test_the_loss_pattern_follows_the_seed_in_each_direction():
    def pattern(seed, order):
        loss = Loss(0.2, seed)
        return [(way, loss.drop(way)) for way in order]

    order = ["out", "in"] * 20
    a = pattern(8, order)
    assert a == pattern(8, order) != pattern(9, order)
    # The n-th datagram of a direction meets the same fate however the two interleave.
    b = pattern(8, ["out"] * 20 + ["in"] * 20)
    assert [d for w, d in a if w == "out"] == [d for w, d in b if w == "out"]
    assert [d for w, d in a if w == "in"] == [d for w, d in b if w == "in"]
    assert a[0] == ("out", True)  # seed 8 loses the first datagram out, as used above
    assert not any(Loss(0.0, 8).drop("out") for _ in range(100))
    assert all(Loss(1.0).drop("in") for _ in range(100))


@pytest.mark.parametrize("seed", [2, 3, 5, 10, 13, 16])
def test_handshakes_under_loss_complete_for_other_seeds(seed):
    with DtlsEchoPeer(psk=PSK) as peer, booted(loss=0.2, loss_seed=seed) as (m, host):
        provision(host, PSK_LINES)
        udp_socket(host)
        assert dtls_connect(host, peer.port) == OK
        record = m.handshakes[0]
        assert record.ok and record.retransmissions >= (1 if record.dropped else 0)


def test_a_datagram_of_1401_bytes_is_refused(psk_peer):
    with booted() as (m, host):
        provision(host, PSK_LINES)
        udp_socket(host)
        assert dtls_connect(host, psk_peer.port) == OK
        assert send(host, psk_peer.port, b"1,1401") == E3
        assert send(host, psk_peer.port, b"0," + b"x" * 1401) == E3
        assert send(host, psk_peer.port, b"1,0") == E3
        # 1400 bytes go out whole, as one datagram.
        assert send(host, psk_peer.port, b"1,1400") == OK
        host.uart.write(b"\xa5" * 1400)
        assert host.expect(OK)[0] == OK
        assert psk_peer.wait("received", 1) == [b"\xa5" * 1400]
        assert next_frame(host) == b"\xa5" * 1400


def test_two_datagrams_back_to_back_keep_their_boundaries(psk_peer):
    with booted() as (m, host):
        provision(host, PSK_LINES)
        udp_socket(host)
        assert dtls_connect(host, psk_peer.port) == OK
        first, second = b"one\r\nOK\r\n", b"two"
        psk_peer.push(first)
        psk_peer.push(second)
        assert frames(host, 2) == [first, second]
        # Two sends written back to back, two datagrams, echoed as two. The first echo's
        # #IPRECV may come before the second send's OK.
        for data in (b"0D0A", b"0A0D"):
            host.send(b"AT#IPSENDUDP=5,0,127.0.0.1,%d,0,2,%s" % (psk_peer.port, data))
        sizes = []
        oks = 0
        while oks < 2 or len(sizes) < 2:
            _, got = host.expect(re.compile(rb"\r\n(OK|#IPRECV: 5,0,(\d+))\r\n"))
            if got.group(1) == b"OK":
                oks += 1
            else:
                sizes.append(int(got.group(2)))
        assert sizes == [2, 2]
        assert [host.ipread(0)[0] for _ in sizes] == [b"\r\n", b"\n\r"]
        assert psk_peer.received == [b"\r\n", b"\n\r"]
        assert host.cmd(b"AT#IPREAD=5,0") == b"\r\n#IPREAD: 5,0,0\r\n\r\n\r\nOK\r\n"


def test_sends_on_a_dtls_socket_go_to_its_peer_only(psk_peer):
    with booted() as (m, host):
        provision(host, PSK_LINES)
        udp_socket(host, urc=0)  # no #IPRECV between the replies
        assert send(host, psk_peer.port, b"0,early") == E2154  # before the handshake
        assert dtls_connect(host, psk_peer.port) == OK
        assert send(host, psk_peer.port + 1, b"0,elsewhere") == E3
        assert send(host, psk_peer.port, b"0,x", target=b"127.0.0.2") == E3
        assert host.cmd(b"AT#IPSENDUDP=5,0,127.0.0.1,%d,3,0,x" % psk_peer.port) == E3
        for rai in (0, 1, 2):
            line = b"AT#IPSENDUDP=5,0,127.0.0.1,%d,%d,0,rai" % (psk_peer.port, rai)
            assert host.cmd(line) == OK
        assert host.cmd(b"AT#IPSENDTCP=5,0,0,tcp") == E3
        assert psk_peer.wait("received", 3) == [b"rai"] * 3


def test_close_notify_from_the_peer_is_socketclosed(psk_peer):
    with booted() as (m, host):
        provision(host, PSK_LINES)
        udp_socket(host, urc=1)
        assert dtls_connect(host, psk_peer.port) == OK
        psk_peer.push(b"last words")
        host.expect(b"#IPRECV: 5,0\r\n")
        psk_peer.close_client()
        assert host.expect(b"#SOCKETCLOSED: 5,0\r\n")[0] == b"\r\n#SOCKETCLOSED: 5,0\r\n"
        assert host.ipread(0)[0] == b"last words"
        assert host.cmd(b"AT#DTLSCONNECT?") == b"\r\n#DTLSCONNECT: 5,0,0,0\r\n" + OK
        assert send(host, psk_peer.port, b"0,late") == E2154
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK


def test_plain_udp_sends_and_receives_datagrams():
    with UdpEchoPeer() as peer, booted() as (m, host):
        sock = udp_socket(host, sec=None)
        assert send(host, peer.port, b"0,hello", sock=sock) == OK
        assert next_frame(host, sock) == b"hello"
        assert send(host, peer.port, b"2,00FF", sock=sock) == OK
        assert next_frame(host, sock) == b"\x00\xff"
        assert peer.wait_received(2) == [b"hello", b"\x00\xff"]
        # Every datagram left from the same emulator port.
        assert len({addr for _, addr in peer.received}) == 1
        assert send(host, peer.port, b"1,1401", sock=sock) == E3
        assert host.cmd(b"AT#DTLSCONNECT?") == b"\r\n#DTLSCONNECT: 5,0,0,0\r\n" + OK
        assert m.handshakes == []


def test_plain_udp_follows_the_loopback_policy(caplog):
    with UdpEchoPeer() as peer:
        routes = {"192.168.21.4:5683": ("127.0.0.1", peer.port)}
        with booted(routes=routes) as (m, host):
            udp_socket(host, sec=None)
            assert send(host, 5683, b"0,routed", target=b"192.168.21.4") == OK
            assert next_frame(host) == b"routed"
            assert send(host, 5684, b"0,nowhere", target=b"192.168.21.4") == E2154
            assert "loopback" in caplog.text
            assert peer.wait_received(1) == [b"routed"]


def test_plain_udp_under_total_loss_sends_but_nothing_arrives():
    with UdpEchoPeer() as peer, booted(loss=1.0) as (m, host):
        udp_socket(host, sec=None)
        assert send(host, peer.port, b"0,lost") == OK  # UDP cannot tell
        assert host.drain(0.3) == b""
        assert peer.received == []


# --- session resumption ---


def tls_connect(host, port, sock=0):
    assert host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1,0") == (
        b"\r\n#SOCKETCREATE: %d\r\n" % sock + OK
    )
    return host.cmd(b"AT#TCPCONNECT=5,%d,127.0.0.1,%d" % (sock, port), timeout=15)


def tls_exchange(host, text=b"resumed?"):
    assert host.cmd(b"AT#IPSENDTCP=5,0,0," + text) == OK
    assert host.cmd(b"AT#IPSENDTCP=5,0,2,0A") == OK
    got = b""
    while not got.endswith(b"\n"):
        host.expect(b"#IPRECV: 5,0\r\n", timeout=5)
        got += host.ipread(0)[0]
    assert got == text[::-1] + b"\n"


@pytest.mark.parametrize("tickets", [True, False], ids=["ticket", "session-id"])
def test_tls12_resumption_against_openssl(tickets):
    extra = () if tickets else ("-no_ticket",)
    with OpenSSLServer.psk(PSK_HEX, IDENT, extra=extra) as srv, booted() as (m, host):
        provision(host, PSK_LINES)
        for _ in range(2):
            assert tls_connect(host, srv.port) == OK
            tls_exchange(host)
            assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        full, short = m.handshakes
        assert (full.protocol, full.offered_session, full.resumed) == ("TLS 1.2", False, False)
        assert (short.offered_session, short.resumed) == (True, True)
        # Full: ClientHello / ServerHello..Done / key exchange, CCS, Finished / (ticket,) CCS,
        # Finished. Abbreviated: ClientHello / ServerHello, (ticket,) CCS, Finished / CCS,
        # Finished: one round trip fewer.
        assert (full.flights, full.round_trips) == (4, 2)
        assert (short.flights, short.round_trips) == (3, 1)
        assert short.records_sent < full.records_sent
        assert short.records_received < full.records_received
        # mbed TLS always asks for a ticket; s_server agrees unless told not to.
        assert 35 in full.client_extensions
        assert (35 in full.server_extensions) == tickets


def test_changing_a_profiles_credentials_drops_its_session():
    with OpenSSLServer.psk(PSK_HEX, IDENT) as srv, booted() as (m, host):
        provision(host, PSK_LINES)
        assert tls_connect(host, srv.port) == OK
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        assert len(m.sessions) == 1
        # The same identity written again is still a credential write.
        provision(host, [b"AT#TLSCERTDEL=0,2", PSK_LINES[1]])
        assert len(m.sessions) == 0
        assert tls_connect(host, srv.port) == OK
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        assert [(h.offered_session, h.resumed) for h in m.handshakes] == [(False, False)] * 2
        # A reboot keeps sessions (the module keeps them with its ITS).
        assert host.cmd(b"AT#RESET=1") == OK
        host.expect(b"#REBOOT_HOST\r\n")
        host.wait_attached()
        host.cmd(b"ATE0")
        assert tls_connect(host, srv.port) == OK
        assert m.handshakes[-1].resumed


def test_dtls12_resumption_against_openssl():
    with OpenSSLDtlsServer.psk(PSK_HEX, IDENT) as srv, booted() as (m, host):
        provision(host, PSK_LINES)
        for n in (1, 2):
            udp_socket(host)
            assert dtls_connect(host, srv.port) == OK
            assert send(host, srv.port, b"0,datagram %d" % n) == OK
            assert srv.wait_output(f"datagram {n}")
            srv.say(f"hello {n}")
            assert next_frame(host) == b"hello %d\n" % n
            assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
            assert srv.wait_output("DONE", n)  # s_server got the close_notify
        assert "Reused session-id" in srv.output  # s_server says so too
        full, short = m.handshakes
        assert (full.protocol, full.resumed, short.offered_session, short.resumed) == (
            "DTLS 1.2",
            False,
            True,
            True,
        )
        # Both start with the cookie exchange; then the full handshake needs two more round
        # trips, the abbreviated one a single one.
        assert (full.flights, full.round_trips) == (6, 3)
        assert (short.flights, short.round_trips) == (5, 2)
        assert short.records_received < full.records_received


def test_dtls_session_offered_to_a_server_without_a_cache_gives_a_full_handshake(psk_peer):
    with booted() as (m, host):
        provision(host, PSK_LINES)
        for _ in range(2):
            udp_socket(host)
            assert dtls_connect(host, psk_peer.port) == OK
            assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        # The session went out, the server did not take it, and the record says so.
        assert [(h.offered_session, h.resumed) for h in m.handshakes] == [
            (False, False),
            (True, False),
        ]
        assert m.handshakes[1].flights == 6


def test_cross_check_with_the_suites_dtls_echo_server():
    # tests_host/dtls_peer.py records what the server side saw; it reverses each datagram.
    dtls_peer = pytest.importorskip("dtls_peer")
    server = dtls_peer.DTLSEchoServer(psk=PSK[1], identity=IDENT)
    with server as srv, booted() as (m, host):
        provision(host, PSK_LINES)
        for _ in range(2):
            udp_socket(host)
            assert dtls_connect(host, srv.port, extra=b",5,AABBCCDD01") == OK
            assert send(host, srv.port, b"0,abc") == OK
            assert next_frame(host) == b"cba"
            assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        first, second = srv.wait_handshake(0), srv.wait_handshake(1)
        # Both ends agree: the second handshake resumed the first one's session, and no
        # Connection ID went out although the host proposed one.
        assert (first.resumed, second.resumed) == (False, True)
        assert [h.resumed for h in m.handshakes] == [False, True]
        assert first.client_cid is None and second.client_cid is None
        assert host.cmd(b"AT#DTLSCONNECT?") == OK  # no UDP socket left


def test_tls12_resumption_with_certificates_after_the_tls13_attempt(pki):
    args = ["-tls1_2", "-cert", pki.path("server"), "-key", pki.path("server", key=True), "-rev"]
    with OpenSSLServer(args) as srv, booted() as (m, host):
        provision(host, [certadd(0, 1, pki.der("ca"))])
        for _ in range(2):
            assert tls_connect(host, srv.port) == OK
            tls_exchange(host)
            assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        # Each connect first tries TLS 1.3 (the CA allows it), refused by this server.
        assert [(h.protocol, h.ok, h.resumed) for h in m.handshakes] == [
            ("TLS 1.3", False, False),
            ("TLS 1.2", True, False),
            ("TLS 1.3", False, False),
            ("TLS 1.2", True, True),
        ]
        full, short = m.handshakes[1], m.handshakes[3]
        assert full.cipher.startswith("TLS-ECDHE-ECDSA-WITH-")
        # No Certificate, ServerKeyExchange or ServerHelloDone the second time.
        assert short.records_received < full.records_received
        assert short.round_trips == 1
