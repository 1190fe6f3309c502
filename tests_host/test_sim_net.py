# st87-sim: plain TCP sockets, the loopback policy, routes and the DNS table, in raw AT bytes.

import re

import pytest
from sim_helpers import FAST, TcpPeer, booted

from st87sim import Module

OK = b"\r\nOK\r\n"


@pytest.fixture
def peer():
    with TcpPeer(echo=False) as p:
        yield p


@pytest.fixture
def echo_peer():
    with TcpPeer(echo=True) as p:
        yield p


def connect(host, port, target=b"127.0.0.1", urc=1):
    reply = host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,%d" % urc)
    sock = int(re.search(rb"#SOCKETCREATE: (\d)", reply).group(1))
    assert host.cmd(b"AT#TCPCONNECT=5,%d,%s,%d" % (sock, target, port)) == OK
    return sock


def test_send_types_and_length_framed_reads():
    with booted() as (m, host), TcpPeer(echo=False) as peer:
        sock = connect(host, peer.port, urc=2)
        assert host.cmd(b'AT#IPSENDTCP=5,0,0,"a,b"') == OK
        assert host.cmd(b"AT#IPSENDTCP=5,0,2,0D0a4F4b0D0A") == OK
        # Binary, one byte per write: the module waits for all of them.
        assert host.cmd(b"AT#IPSENDTCP=5,0,1,4") == OK
        for b in b"\x00\xffOK":
            host.uart.write(bytes([b]))
        assert host.expect(OK)[0] == OK
        assert peer.wait_received(13) == b"a,b\r\nOK\r\n\x00\xffOK"

        # Each received chunk is one frame; the payload may hold CR, LF and "OK".
        peer.push(b"a,b\r\nOK\r\n\x00\xffOK")
        got = b""
        while len(got) < 13:
            _, urc = host.expect(re.compile(rb"\r\n#IPRECV: 5,0,(\d+)\r\n"))
            payload, tail = host.ipread(sock)
            assert int(urc.group(1)) == len(payload)
            assert tail == b"\r\n\r\nOK\r\n"
            got += payload
        assert got == b"a,b\r\nOK\r\n\x00\xffOK"


def test_ipread_trailer_comes_from_the_profile(echo_peer):
    with booted(FAST.replace(ipread_trailer=b"\r\nOK\r\n")) as (m, host):
        sock = connect(host, echo_peer.port)
        host.cmd(b"AT#IPSENDTCP=5,0,0,ping")
        host.expect(b"#IPRECV: 5,0\r\n")
        assert host.ipread(sock) == (b"ping", b"\r\nOK\r\n")
        host.send(b"AT#IPREAD=5,0")
        assert host.drain() == b"\r\n#IPREAD: 5,0,0\r\n\r\nOK\r\n"


def test_send_errors(peer):
    with booted() as (m, host):
        assert host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1").endswith(OK)
        assert host.cmd(b"AT#IPSENDTCP=5,0,0,early") == b"\r\n+CME ERROR: 2154\r\n"
        assert host.cmd(b"AT#IPSENDTCP=5,3,0,nobody") == b"\r\n+CME ERROR: 2104\r\n"
        assert host.cmd(b"AT#TCPCONNECT=5,0,127.0.0.1,%d" % peer.port) == OK
        assert host.cmd(b"AT#IPSENDTCP=5,0,1,0") == b"\r\n+CME ERROR: 3\r\n"
        assert host.cmd(b"AT#IPSENDTCP=5,0,1,1401") == b"\r\n+CME ERROR: 3\r\n"
        assert host.cmd(b"AT#IPSENDTCP=5,0,2,abc") == b"\r\n+CME ERROR: 3\r\n"
        assert host.cmd(b"AT#IPSENDTCP=5,0,1,1400") == OK
        host.uart.write(b"\x55" * 1400)
        assert host.expect(OK)[0] == OK
        assert host.cmd(b"AT#TCPCONNECT=5,0,127.0.0.1,%d" % peer.port) == b"\r\n+CME ERROR: 3\r\n"


def test_socket_ids_run_out_at_six_and_need_the_pdn_context():
    with booted() as (m, host):
        for n in range(6):
            reply = host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1")
            assert reply == b"\r\n#SOCKETCREATE: %d\r\n\r\nOK\r\n" % n
        assert host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1") == b"\r\n+CME ERROR: 2159\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,2") == OK
        assert host.cmd(b"AT#SOCKETCREATE=5,0,UDP,0,60,60,1") == b"\r\n#SOCKETCREATE: 2\r\n" + OK
        assert [s.proto for s in m.open_sockets()] == ["TCP"] * 2 + ["UDP"] + ["TCP"] * 3
        assert host.cmd(b"AT#SOCKETCREATE=1,0,TCP,0,60,60,1") == b"\r\n+CME ERROR: 2106\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,6") == b"\r\n+CME ERROR: 2104\r\n"


def test_peer_close_keeps_frames_and_the_id(peer):
    with booted() as (m, host):
        sock = connect(host, peer.port)
        assert host.cmd(b"AT#TCPCONNECT?") == b"\r\n#TCPCONNECT: 5,0,1\r\n" + OK
        peer.push(b"last words")
        host.expect(b"#IPRECV: 5,0\r\n")
        peer.close_clients()
        assert host.expect(b"#SOCKETCLOSED: 5,0\r\n")[0] == b"\r\n#SOCKETCLOSED: 5,0\r\n"
        assert host.ipread(sock)[0] == b"last words"
        assert host.cmd(b"AT#SOCKETCREATE?") == b"\r\n#SOCKETCREATE: 0,5,TCP,2\r\n" + OK
        assert host.cmd(b"AT#TCPCONNECT?") == b"\r\n#TCPCONNECT: 5,0,0\r\n" + OK
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        assert host.cmd(b"AT#SOCKETCREATE?") == OK


def test_a_refused_connection_is_2152_and_keeps_the_socket():
    with TcpPeer() as gone:
        port = gone.port
    with booted() as (m, host):
        host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,5,5,1")
        assert host.cmd(b"AT#TCPCONNECT=5,0,127.0.0.1,%d" % port) == b"\r\n+CME ERROR: 2152\r\n"
        assert [s.state for s in m.open_sockets()] == ["created"]


def test_reboot_and_radio_off_close_every_socket(peer):
    with booted() as (m, host):
        connect(host, peer.port)
        host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1")
        assert host.cmd(b"AT+CFUN=4") == OK
        assert host.expect(b"#IPCFG: 5,0,0\r\n")[0] == (
            b"\r\n#SOCKETCLOSED: 5,0\r\n\r\n+CEREG: 0\r\n\r\n#IPCFG: 5,0,0\r\n"
        )
        assert m.open_sockets() == []
        host.cmd(b"AT+CFUN=1")
        host.wait_attached()
        connect(host, peer.port)
        assert host.cmd(b"AT#RESET=0") == OK
        host.expect(b"#REBOOT_HOST\r\n")
        assert m.open_sockets() == []


def test_non_loopback_is_refused_without_a_route(peer, caplog):
    with booted() as (m, host):
        host.cmd(b"AT#SOCKETCREATE=5,0,TCP,5000,60,60,1,0")
        reply = host.cmd(b"AT#TCPCONNECT=5,0,192.168.21.4,4433")
        assert reply == b"\r\n+CME ERROR: 2152\r\n"
        assert "192.168.21.4" in caplog.text and "loopback" in caplog.text
        host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1")
        assert host.cmd(b"AT#TCPCONNECT=5,1,server.example,80") == b"\r\n+CME ERROR: 2152\r\n"
        assert [s.state for s in m.open_sockets()] == ["created", "created"]


def test_a_route_maps_the_notes_address_onto_loopback(echo_peer):
    routes = {"192.168.21.4:4433": ("127.0.0.1", echo_peer.port)}
    with booted(routes=routes) as (m, host):
        sock = connect(host, 4433, target=b"192.168.21.4")
        assert m.open_sockets()[0].remote == ("127.0.0.1", echo_peer.port)
        host.cmd(b"AT#IPSENDTCP=5,0,0,routed")
        host.expect(b"#IPRECV: 5,0\r\n")
        assert host.ipread(sock)[0] == b"routed"
        # Only that port is routed.
        host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1")
        assert host.cmd(b"AT#TCPCONNECT=5,1,192.168.21.4,4434") == b"\r\n+CME ERROR: 2152\r\n"


def test_names_resolve_through_the_dns_table_and_routes(peer):
    dns = {"server.example": "127.0.0.1", "far.example": "192.168.21.4"}
    routes = {"192.168.21.4:443": "127.0.0.1:%d" % peer.port}
    with booted(dns=dns, routes=routes) as (m, host):
        connect(host, peer.port, target=b"server.example")
        connect(host, peer.port, target=b"localhost")
        connect(host, 443, target=b'"far.example"')
        assert [s.remote for s in m.open_sockets()] == [("127.0.0.1", peer.port)] * 3


@pytest.mark.parametrize(
    "routes",
    [
        {"192.168.21.4:4433": ("192.168.21.5", 4433)},
        {"192.168.21.4:4433": "10.0.0.1:4433"},
        {"192.168.21.4:4433": ("localhost", 4433)},
    ],
)
def test_a_route_to_a_non_loopback_target_is_rejected(routes):
    with pytest.raises(ValueError, match="loopback"):
        Module(FAST, routes=routes)
