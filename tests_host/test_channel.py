# The AT channel against scripted module replies: framing, final results, URCs, echo,
# length-framed payloads, timeouts and resync, over-long lines, any chunking.

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import OK, START, ScriptedUART, reply

import st87
from st87.at import Channel


def started(steps=(), chunk=8, **kw):
    uart = ScriptedUART(START + list(steps), chunk=chunk)
    modem = st87.Modem(uart, **kw)
    modem.start(timeout_ms=2000)
    return modem, uart


def test_echo_before_ate0_is_not_taken_for_a_reply():
    # Echo is on after power-up: each command comes back before its answer, ending in its own
    # CR. The driver must see through it until ATE0 takes effect.
    uart = ScriptedUART(
        [
            (b"AT+CMEE?\r", b"AT+CMEE?\r" + reply(b"+CMEE: 1")),
            (b"ATE0\r", b"ATE0\r" + OK),
            (b"AT+CMEE=1\r", OK),
            (b"AT+CFUN?\r", reply(b"+CFUN: 1")),
            (b"AT#SOCKETCREATE?\r", OK),
            (b"AT+CGSN\r", reply(b"354000000000017")),
        ]
    )
    seen = []
    modem = st87.Modem(uart, trace=lambda d, b: seen.append((d, bytes(b))))
    modem.start(timeout_ms=2000)
    assert modem.state == st87.modem.READY
    assert modem.cfun == 1
    assert modem.command("AT+CGSN") == [b"354000000000017"]
    assert ("<", b"ATE0") in seen  # the echo was seen, and not mistaken for an answer


def test_urc_between_information_line_and_ok():
    modem, uart = started(
        [
            (
                b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1\r",
                reply(b"#SOCKETCREATE: 1", final=None)
                + reply(b"+CEREG: 1", b"#IPCFG: 5,0,1", final=None)
                + OK,
            )
        ]
    )
    lines = modem.channel.command(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1")
    assert lines == [b"#SOCKETCREATE: 1"]
    assert modem.registered and modem.ip_up  # the URCs reached their handlers


def test_cme_error_codes():
    modem, uart = started(
        [
            (b"AT#TLSKEYADD=0\r", reply(final=b"+CME ERROR: 1301")),
            (b"AT#TLSKEYADD=1\r", reply(final=b"+CME ERROR")),
            (b"AT#TLSKEYADD=2\r", reply(final=b"ERROR")),
            (b"AT#TLSKEYADD=3\r", reply(final=b"+CME ERROR:20")),
        ]
    )
    codes = []
    for i in range(4):
        with pytest.raises(st87.ATError) as e:
            modem.command("AT#TLSKEYADD=%d" % i)
        codes.append(e.value.code)
    assert codes == [1301, None, None, 20]
    assert "AT#TLSKEYADD" in str(e.value)


def test_ipread_payload_with_crlf_and_ok_inside():
    payload = b"OK\r\nERROR\r\n+CME ERROR: 1\r\n#IPRECV: 5,0\r\nOK"
    modem, uart = started(
        [
            (b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1,0\r", reply(b"#SOCKETCREATE: 0")),
            (b"AT#TCPCONNECT=5,0,example.com,443\r", OK + reply(b"#IPRECV: 5,0", final=None)),
            (
                b"AT#IPREAD=5,0\r",
                b"\r\n#IPREAD: 5,0,%d\r\n" % len(payload) + payload + b"\r\n\r\nOK\r\n",
            ),
            (b"AT#SOCKETCLOSE=5,0\r", OK),
        ]
    )
    with modem.socket(st87.TCP, sec_id=0) as sock:
        sock.connect(("example.com", 443))
        buf = bytearray(100)
        n = sock.readinto(buf)
        assert bytes(buf[:n]) == payload
    assert not uart.steps  # the close went out too


def test_every_reply_in_one_byte_chunks():
    payload = bytes(range(256))
    modem, uart = started(
        [
            (b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1,3\r", reply(b"#SOCKETCREATE: 2")),
            (b"AT#TCPCONNECT=5,2,127.0.0.1,4433\r", OK),
            (b"AT#IPSENDTCP=5,2,1,5\r", OK),
            (b"hello", OK + reply(b"#IPRECV: 5,2", final=None)),
            (
                b"AT#IPREAD=5,2\r",
                b"\r\n#IPREAD: 5,2,256\r\n" + payload + b"\r\nOK\r\n",
            ),
            (b"AT#SOCKETCLOSE=5,2\r", OK),
        ],
        chunk=1,
    )
    sock = modem.socket(st87.TCP, sec_id=3)
    sock.connect(("127.0.0.1", 4433))
    assert sock.send(b"hello") == 5
    assert sock.recv(300) == payload
    sock.close()
    assert sock.state == st87.sockets.CLOSED


def test_frame_larger_than_the_callers_buffer_is_kept_for_the_next_read():
    payload = b"0123456789" * 10
    modem, uart = started(
        [
            (b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1\r", reply(b"#SOCKETCREATE: 0")),
            (b"AT#TCPCONNECT=5,0,h,1\r", OK + reply(b"#IPRECV: 5,0", final=None)),
            (b"AT#IPREAD=5,0\r", b"\r\n#IPREAD: 5,0,100\r\n" + payload + b"\r\n\r\nOK\r\n"),
        ]
    )
    sock = modem.socket(st87.TCP)
    sock.connect(("h", 1))
    got = b""
    while len(got) < 100:
        got += sock.recv(30)
    assert got == payload


def test_the_frame_buffer_is_lent_to_one_socket_at_a_time():
    # The modem makes one frame buffer up front and lends it; a second socket with a frame
    # larger than its buffer makes its own, and each keeps its own leftover bytes.
    a, b = b"A" * 100, b"B" * 100
    modem, uart = started(
        [
            (b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1\r", reply(b"#SOCKETCREATE: 0")),
            (b"AT#TCPCONNECT=5,0,h,1\r", OK + reply(b"#IPRECV: 5,0", final=None)),
            (b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1\r", reply(b"#SOCKETCREATE: 1")),
            (b"AT#TCPCONNECT=5,1,h,2\r", OK + reply(b"#IPRECV: 5,1", final=None)),
            (b"AT#IPREAD=5,0\r", b"\r\n#IPREAD: 5,0,100\r\n" + a + b"\r\n\r\nOK\r\n"),
            (b"AT#IPREAD=5,1\r", b"\r\n#IPREAD: 5,1,100\r\n" + b + b"\r\n\r\nOK\r\n"),
            (b"AT#SOCKETCLOSE=5,0\r", OK),
            (b"AT#SOCKETCLOSE=5,1\r", OK),
        ]
    )
    lent = modem._frame
    s0, s1 = modem.socket(st87.TCP), modem.socket(st87.TCP)
    s0.connect(("h", 1))
    s1.connect(("h", 2))
    assert s0.recv(40) == a[:40] and s1.recv(40) == b[:40]
    assert s0._spill is lent and s1._spill is not lent and modem._frame is None
    assert s0.recv(100) == a[40:] and s1.recv(100) == b[40:]
    s0.close()
    s1.close()
    assert modem._frame is lent and not uart.steps


def test_without_a_frame_buffer_up_front_one_is_made_only_for_a_large_frame():
    small, large = b"s" * 20, b"L" * 100
    modem, uart = started(
        [
            (b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1\r", reply(b"#SOCKETCREATE: 0")),
            (b"AT#TCPCONNECT=5,0,h,1\r", OK + reply(b"#IPRECV: 5,0", final=None)),
            (
                b"AT#IPREAD=5,0\r",
                b"\r\n#IPREAD: 5,0,20\r\n" + small + b"\r\n#IPRECV: 5,0\r\nOK\r\n",
            ),
            (b"AT#IPREAD=5,0\r", b"\r\n#IPREAD: 5,0,100\r\n" + large + b"\r\nOK\r\n"),
        ],
        frame_buf=False,
    )
    assert modem._frame is None
    sock = modem.socket(st87.TCP)
    sock.connect(("h", 1))
    assert sock.recv(40) == small
    assert sock._spill is None  # the frame fitted: nothing was made

    # A frame larger than the buffer: the rest waits in a spill buffer made for it.
    assert sock.recv(40) == large[:40]
    assert sock._spill is not None and len(sock._spill) >= 60
    assert sock.recv(100) == large[40:] and not uart.steps


def test_missing_reply_times_out_then_resyncs_cleanly():
    modem, uart = started([(b"AT+CGSN\r", b"")])
    with pytest.raises(st87.ATTimeout):
        modem.command("AT+CGSN", timeout_ms=100)
    assert modem.channel.dirty

    # The late answer to AT+CGSN arrives now; it must not be taken for the next reply.
    uart.inject(reply(b"354000000000017"))
    uart.add(b"AT+CMEE?\r", reply(b"+CMEE: 1"))
    uart.add(b"ATI\r", reply(b"ST87M01"))
    assert modem.command("ATI") == [b"ST87M01"]
    assert not modem.channel.dirty


def test_overlong_garbage_line_is_dropped_without_losing_the_next_urc():
    uart = ScriptedUART(chunk=64, unsolicited=b"\xff\xfe" * 1500 + b"\r\n#IPCFG: 5,0,1\r\n")
    ch = Channel(uart, rxbuf=256)
    seen = []
    ch.on(b"#IPCFG:", lambda buf, s, e: seen.append(bytes(buf[s:e])))
    ch.poll(200)
    assert seen == [b"#IPCFG: 5,0,1"]
    assert ch.dropped == 1


def test_boot_urc_fails_the_command_in_flight():
    modem, uart = started([(b"AT+CGSN\r", reply(b"#REBOOT_WD", final=None))])
    with pytest.raises(st87.ModemRebooted):
        modem.command("AT+CGSN", timeout_ms=500)
    assert modem.state == st87.modem.BOOTING


def test_start_waits_through_boot_noise_and_1120():
    uart = ScriptedUART(
        [
            (b"AT+CMEE?\r", reply(final=b"+CME ERROR: 1120")),
            (b"AT+CMEE?\r", b"\r\n#SYSSTART\r\n" + reply(b"+CMEE: 1")),
        ]
        + START[1:],
        unsolicited=b"\x00\x13\xfe\r\n#REBOOT_RESET\r\n",
    )
    modem = st87.Modem(uart)
    modem.start(timeout_ms=3000)
    assert modem.state == st87.modem.READY
    assert modem.boots == 1


def test_secrets_never_reach_the_trace():
    psk = bytes(range(0xA0, 0xC0))
    seen = []
    modem, uart = started(
        [
            (b"AT#TLSKEYLIST\r", OK),
            (b"AT#TLSCERTLIST\r", OK),
            (b"AT+CFUN=4\r", OK),
            (b"AT#TLSKEYADD=0,1,2,4,32," + psk.hex().upper().encode() + b"\r", OK),
            (b"AT#TLSCERTADD=0,2,4,6964656E\r", OK),
        ],
        trace=lambda d, b: seen.append(bytes(b)),
    )
    modem.tls.add_psk(0, psk, b"iden")
    text = b"\n".join(seen)
    assert psk.hex().upper().encode() not in text and psk.hex().encode() not in text
    assert b"AT#TLSKEYADD=0,1,2,4,32,<secret 32 bytes>" in text
    scratch = bytes(modem.channel._hex)  # the hex scratch buffer was wiped after the key
    assert psk.hex().upper()[:16].encode() not in scratch


# Any split of the same stream into reads gives the same lines and payload.
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_any_chunking_gives_the_same_result(sizes):
    payload = b"x\r\nOK\r\n" * 9
    stream = (
        b"\r\n#IPRECV: 5,0\r\n\r\n#IPREAD: 5,0,63\r\n"
        + payload
        + b"\r\n\r\nOK\r\n\r\n+CEREG: 1\r\n"
    )

    class Uneven(ScriptedUART):
        def readinto(self, buf, nbytes=None):
            self.chunk = sizes[self.calls % len(sizes)]
            self.calls += 1
            return super().readinto(buf, nbytes)

    uart = Uneven([(b"AT#IPREAD=5,0\r", stream)])
    uart.calls = 0
    ch = Channel(uart, rxbuf=64)
    urcs = []
    ch.on(b"#IPRECV:", lambda buf, s, e: urcs.append(bytes(buf[s:e])))
    ch.on(b"+CEREG:", lambda buf, s, e: urcs.append(bytes(buf[s:e])))
    dest = memoryview(bytearray(80))
    n = ch.transact(b"AT#IPREAD=5,0\r", b"AT#IPREAD", b"#IPREAD:", 1000, dest, lambda k: dest[70:])
    ch.poll(20)
    assert n == 63 and bytes(dest[:63]) == payload
    assert urcs == [b"#IPRECV: 5,0", b"+CEREG: 1"]
