# st87-sim: real TLS 1.2 PSK sessions against `openssl s_server` (application note 5.2), in
# raw AT bytes. -rev makes the server send each line back reversed.

import re
import time

import pytest
from peers import OpenSSLServer
from sim_helpers import VECTORS, booted

PSK_HEX = VECTORS["psk_4_2"]
IDENT_HEX = VECTORS["psk_identity_4_2_hex"]
IDENT_TEXT = VECTORS["psk_identity_4_2_text"]

OK = b"\r\nOK\r\n"
IPRECV = re.compile(rb"\r\n#IPRECV: 5,(\d+)(?:,(\d+))?\r\n")


@pytest.fixture
def psk_server():
    server = OpenSSLServer.psk(PSK_HEX, IDENT_TEXT).start()
    yield server
    server.stop()


def provision(host, sec=0, key_hex=PSK_HEX):
    assert host.cmd(b"AT+CFUN=4") == OK
    host.expect(b"#IPCFG: 5,0,0\r\n")
    keyadd = b"AT#TLSKEYADD=%d,1,2,4,%d,%s" % (sec, len(key_hex) // 2, key_hex.encode())
    assert host.cmd(keyadd) == OK
    assert host.cmd(b"AT#TLSCERTADD=%d,2,15,%s" % (sec, IDENT_HEX.encode())) == OK
    assert host.cmd(b"AT+CFUN=1") == OK
    host.wait_attached()


# AT#IPREAD until `want` bytes came (a URC may be consumed on the way, so this does not count
# them); returns the bytes and the frame sizes.
def receive(host, sock, want, timeout=5):
    got = b""
    sizes = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        payload, tail = host.ipread(sock)
        assert tail == b"\r\n\r\nOK\r\n"
        if payload:
            got += payload
            sizes.append(len(payload))
        else:
            time.sleep(0.02)
    return got, sizes


def test_note_5_2_session_with_all_send_types(psk_server):
    with booted() as (m, host):
        provision(host)
        assert host.cmd(b"AT#SOCKETCREATE=5,0,TCP,5000,60,60,1,0") == (
            b"\r\n#SOCKETCREATE: 0\r\n" + OK
        )
        assert host.cmd(b"AT#TCPCONNECT=5,0,127.0.0.1,%d" % psk_server.port, timeout=10) == OK
        assert host.cmd(b"AT#TCPCONNECT?") == b"\r\n#TCPCONNECT: 5,0,1\r\n" + OK

        # Text inline (the note's payload), then the newline s_server waits for, as hex.
        assert host.cmd(b"AT#IPSENDTCP=5,0,0,ST87M_NBIOT_TLS_test") == OK
        assert host.cmd(b"AT#IPSENDTCP=5,0,2,0a") == OK
        assert host.expect(IPRECV)[1].group(0) == b"\r\n#IPRECV: 5,0\r\n"
        assert receive(host, 0, 21)[0] == b"tset_SLT_TOIBN_M78TS\n"

        # Binary: OK, the raw bytes (here in two writes), OK.
        payload = b"x,y\r\nOK\n"
        assert host.cmd(b"AT#IPSENDTCP=5,0,1,%d" % len(payload)) == OK
        host.uart.write(payload[:3])
        host.uart.write(payload[3:])
        assert host.expect(re.compile(rb"\r\nOK\r\n"))[0] == OK
        assert receive(host, 0, 7)[0] == b"y,x\nKO\n"

        assert host.cmd(b"AT#IPREAD=5,0") == b"\r\n#IPREAD: 5,0,0\r\n\r\n\r\nOK\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        assert m.open_sockets() == []


def test_received_data_is_split_in_frames_of_1400(psk_server):
    with booted() as (m, host):
        provision(host)
        host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,2,0")
        assert host.cmd(b"AT#TCPCONNECT=5,0,localhost,%d" % psk_server.port, timeout=10) == OK
        line = bytes(range(65, 91)) * 70  # 1820 bytes
        for piece in (line[:1000], line[1000:]):
            assert host.cmd(b"AT#IPSENDTCP=5,0,1,%d" % len(piece)) == OK
            host.uart.write(piece)
            host.expect(OK)
        assert host.cmd(b"AT#IPSENDTCP=5,0,0,x") == OK
        assert host.cmd(b"AT#IPSENDTCP=5,0,2,0A") == OK
        got, sizes = receive(host, 0, 1822)
        assert got == (line + b"x")[::-1] + b"\n"
        assert max(sizes) == 1400


def test_wrong_psk_fails_the_handshake_and_keeps_the_socket(psk_server):
    with booted() as (m, host):
        provision(host, key_hex="00" * 32)
        assert host.cmd(b"AT#SOCKETCREATE=5,0,TCP,5000,60,60,1,0").endswith(OK)
        cmd = b"AT#TCPCONNECT=5,0,127.0.0.1,%d" % psk_server.port
        assert host.cmd(cmd, timeout=10) == b"\r\n+CME ERROR: 2152\r\n"
        [info] = m.open_sockets()
        assert (info.id, info.state, info.sec_id) == (0, "created", 0)
        assert host.cmd(b"AT#SOCKETCREATE?") == b"\r\n#SOCKETCREATE: 0,5,TCP,0\r\n" + OK
        assert host.cmd(b"AT#IPSENDTCP=5,0,0,hello") == b"\r\n+CME ERROR: 2154\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        assert m.open_sockets() == []


def test_a_profile_without_credentials_cannot_connect(psk_server):
    with booted() as (m, host):
        assert host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1,7").endswith(OK)
        cmd = b"AT#TCPCONNECT=5,0,127.0.0.1,%d" % psk_server.port
        assert host.cmd(cmd, timeout=10) == b"\r\n+CME ERROR: 2152\r\n"
        assert [s.id for s in m.open_sockets()] == [0]


def test_server_going_away_is_socketclosed(psk_server):
    with booted() as (m, host):
        provision(host)
        host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1,0")
        assert host.cmd(b"AT#TCPCONNECT=5,0,127.0.0.1,%d" % psk_server.port, timeout=10) == OK
        psk_server.stop()
        assert host.expect(b"#SOCKETCLOSED: 5,0\r\n")[0] == b"\r\n#SOCKETCLOSED: 5,0\r\n"
        assert host.cmd(b"AT#IPSENDTCP=5,0,0,late") == b"\r\n+CME ERROR: 2154\r\n"
        assert [s.state for s in m.open_sockets()] == ["closed"]
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        assert m.open_sockets() == []


def test_close_notify_from_the_server_is_socketclosed(psk_server):
    with booted() as (m, host):
        provision(host)
        host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,0,0")  # <urc> 0: no #IPRECV at all
        assert host.cmd(b"AT#TCPCONNECT=5,0,127.0.0.1,%d" % psk_server.port, timeout=10) == OK
        assert host.cmd(b"AT#IPSENDTCP=5,0,0,abc") == OK
        assert host.cmd(b"AT#IPSENDTCP=5,0,2,0A") == OK
        assert receive(host, 0, 4)[0] == b"cba\n"
        # s_server -rev answers a CLOSE line with a TLS close_notify.
        assert host.cmd(b"AT#IPSENDTCP=5,0,0,CLOSE") == OK
        assert host.cmd(b"AT#IPSENDTCP=5,0,2,0A") == OK
        assert host.expect(b"#SOCKETCLOSED: 5,0\r\n")[0] == b"\r\n#SOCKETCLOSED: 5,0\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
