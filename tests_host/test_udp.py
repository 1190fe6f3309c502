# UDP and DTLS sockets against scripted module replies: datagram boundaries, the send limit,
# Connection ID validation and what the module reports of it.

import pytest
from scripted import OK, START, ScriptedUART, reply

import st87

CREATE = b"AT#SOCKETCREATE=5,0,UDP,0,60,60,1,0\r"
CONNECT = b"AT#DTLSCONNECT=5,1,127.0.0.1,5684"


def dtls(steps, cid=None, chunk=8):
    uart = ScriptedUART(list(START) + steps, chunk=chunk)
    modem = st87.Modem(uart)
    modem.start(timeout_ms=2000)
    sock = modem.socket(st87.UDP, sec_id=0)
    sock.connect(("127.0.0.1", 5684), cid=cid)
    return modem, sock, uart


def ipread(data):
    return b"\r\n#IPREAD: 5,1,%d\r\n" % len(data) + data + b"\r\n\r\nOK\r\n"


def test_datagrams_keep_their_boundaries():
    a, b = b"first\r\nOK\r\n", b"second datagram"
    modem, sock, uart = dtls(
        [
            (CREATE, reply(b"#SOCKETCREATE: 1")),
            (CONNECT + b"\r", OK + reply(b"#IPRECV: 5,1", b"#IPRECV: 5,1", final=None)),
            (b"AT#IPREAD=5,1\r", ipread(a)),
            (b"AT#IPREAD=5,1\r", ipread(b)),
        ]
    )
    assert sock.recv(100) == a
    assert sock.recv(100) == b


def test_a_datagram_larger_than_the_buffer_is_kept_whole():
    data = bytes(range(200))
    modem, sock, uart = dtls(
        [
            (CREATE, reply(b"#SOCKETCREATE: 1")),
            (CONNECT + b"\r", OK + reply(b"#IPRECV: 5,1", final=None)),
            (b"AT#IPREAD=5,1\r", ipread(data)),
        ]
    )
    with pytest.raises(ValueError, match="200 bytes does not fit a 64-byte buffer"):
        sock.recv(64)
    assert sock.recv(256) == data  # the same datagram, whole, with no new AT#IPREAD


def test_send_is_one_datagram_and_a_larger_one_is_refused_before_sending():
    modem, sock, uart = dtls(
        [
            (CREATE, reply(b"#SOCKETCREATE: 1")),
            (CONNECT + b",2,C1D0\r", OK),
            (b"AT#IPSENDUDP=5,1,127.0.0.1,5684,0,1,1400\r", OK),
            (bytes(1400), OK),
            (b"AT#IPSENDUDP=5,1,127.0.0.1,5684,2,1,3\r", OK),
            (b"end", OK),
        ],
        cid=b"\xc1\xd0",
    )
    written = len(uart.written)
    with pytest.raises(ValueError, match="1401 bytes is larger than one send"):
        sock.send(bytes(1401))
    assert len(uart.written) == written
    assert sock.write(bytes(1400)) == 1400
    assert sock.send(b"end", rai=2) == 3
    assert not uart.steps


def test_connection_id_is_validated_and_its_outcome_read_back():
    modem, sock, uart = dtls(
        [
            (CREATE, reply(b"#SOCKETCREATE: 1")),
            (CONNECT + b",5,AABBCCDD01\r", OK),
            (b"AT#DTLSCONNECT?\r", reply(b"#DTLSCONNECT: 5,0,0,0", b"#DTLSCONNECT: 5,1,1,0")),
        ],
        cid=bytes.fromhex("AABBCCDD01"),
    )
    assert sock.cid_negotiated is False
    assert sock.cid_negotiated is False  # asked once
    assert uart.lines().count(b"AT#DTLSCONNECT?") == 1

    for bad in (b"", bytes(33), "AABB"):
        with pytest.raises(ValueError, match="cid"):
            modem.socket(st87.UDP, sec_id=0).connect(("127.0.0.1", 1), cid=bad)
    with pytest.raises(ValueError, match="Connection ID is for DTLS"):
        modem.socket(st87.TCP, sec_id=0).connect(("127.0.0.1", 1), cid=b"x")
    with pytest.raises(ValueError, match="Connection ID is for DTLS"):
        modem.socket(st87.UDP).connect(("127.0.0.1", 1), cid=b"x")


def test_failed_dtls_handshake_frees_the_socket():
    modem, uart = (
        None,
        ScriptedUART(
            list(START)
            + [
                (CREATE, reply(b"#SOCKETCREATE: 1")),
                (CONNECT + b"\r", reply(final=b"+CME ERROR: 2152")),
                (b"AT#SOCKETCLOSE=5,1\r", OK),
            ]
        ),
    )
    modem = st87.Modem(uart)
    modem.start(timeout_ms=2000)
    sock = modem.socket(st87.UDP, sec_id=0)
    with pytest.raises(st87.ATError) as e:
        sock.connect(("127.0.0.1", 5684))
    assert e.value.code == 2152
    assert sock.state == st87.sockets.CLOSED and not uart.steps
