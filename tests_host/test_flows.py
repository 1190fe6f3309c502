# The library against the emulated module (in-process, as a fake machine.UART) and real TLS
# peers: provisioning, commit semantics, the ITS budget, TLS sessions, failure paths, and
# main.py itself with `machine` injected through sys.modules.

import io
import os
import sys
import time
import types
from contextlib import redirect_stdout

import pytest
from peers import OpenSSLServer

import st87
from st87sim import FakeUART, FirmwareProfile, Module

IDENTITY = "Client_identity"
PSK = bytes.fromhex("8bf49643a691b9835a79c7c2a2de44ac0a4e2f1ec816c3ad1cea92a64d3127aa")


@pytest.fixture
def state(tmp_path):
    return str(tmp_path / "its.json")


@pytest.fixture
def module(state):
    m = Module(state_path=state)
    yield m
    m.close()


def started(module, trace=None):
    modem = st87.Modem(FakeUART(module, timeout=20), trace=trace)
    modem.start(timeout_ms=10000)
    return modem


@pytest.fixture
def psk_server():
    with OpenSSLServer.psk(PSK.hex(), IDENTITY) as server:
        yield server


def test_psk_session_end_to_end(module, psk_server):
    lines = []
    modem = started(module, trace=lambda d, b: lines.append(bytes(b)))
    modem.tls.add_psk(0, PSK, IDENTITY)
    modem.tls.save()
    modem.attach(timeout_ms=10000)

    with modem.socket(st87.TCP, sec_id=0) as sock:
        sock.settimeout(10)
        sock.connect(("127.0.0.1", psk_server.port))
        sock.write(b"ST87M_NBIOT_TLS_test\n")
        got = b""
        while not got.endswith(b"\n"):
            got += sock.recv(64)
    assert got == b"tset_SLT_TOIBN_M78TS\n"
    assert module.open_sockets() == []
    text = b"\n".join(lines)
    assert PSK.hex().encode() not in text.lower()


def test_wrong_psk_raises_at_error_and_leaves_no_socket(module):
    modem = started(module)
    modem.tls.add_psk(0, bytes(32), IDENTITY)  # not the server's PSK
    modem.attach(timeout_ms=10000)
    with OpenSSLServer.psk(PSK.hex(), IDENTITY) as server:
        sock = modem.socket(st87.TCP, sec_id=0)
        with pytest.raises(st87.ATError) as e:
            sock.connect(("127.0.0.1", server.port))
    assert e.value.code is not None
    assert sock.state == st87.sockets.CLOSED
    assert module.open_sockets() == []


def test_eleventh_its_file_fails_and_stores_nothing(module):
    modem = started(module)
    tls = modem.tls
    tls.add_psk(0, PSK, "a")  # 3 files: header, PSK, identity
    tls.add_psk(1, PSK, "b")  # 6
    modem.command("AT#TLSKEYADD=2,1,2,4,32," + PSK.hex())  # 8: header, PSK
    modem.command("AT#TLSKEYADD=3,1,2,4,32," + PSK.hex())  # 10: the ITS is full
    assert tls.files() == (10, 0)

    # The 11th file: the module refuses it, and nothing of it is stored.
    with pytest.raises(st87.ATError) as e:
        modem.command("AT#TLSCERTADD=2,2,1,63")
    assert e.value.code == 20
    assert tls.psk_identity(2) is None
    assert tls.files() == (10, 0)

    # The library sees it coming and refuses before writing anything.
    sent = []
    modem.channel.trace = lambda d, b: sent.append(bytes(b))
    with pytest.raises(st87.ModemError, match="ITS full"):
        tls.add_psk(4, PSK, "e")
    assert not [s for s in sent if s.startswith(b"AT#TLSKEYADD") or s.startswith(b"AT#TLSCERTADD")]
    assert [e for e in tls.list() if e[0] == 4] == []


def test_credentials_need_reset_1_to_survive_a_power_cycle(state):
    m = Module(state_path=state)
    modem = started(m)
    modem.tls.add_psk(5, PSK, IDENTITY)
    assert modem.tls.has_psk(5, IDENTITY)
    m.close()

    # A new emulator on the same state file is a power cycle: the write was RAM only.
    m = Module(state_path=state)
    modem = started(m)
    assert not modem.tls.has_psk(5, IDENTITY)
    modem.tls.add_psk(5, PSK, IDENTITY)
    modem.tls.save()
    m.close()

    m = Module(state_path=state)
    modem = started(m)
    assert modem.tls.has_psk(5, IDENTITY)
    assert [e[1] for e in modem.tls.list(5)] == ["psk", "identity"]
    m.close()


def test_existing_element_is_refused_before_sending(module):
    modem = started(module)
    modem.tls.add_psk(0, PSK, IDENTITY)
    with pytest.raises(st87.ModemError, match="already holds"):
        modem.tls.add_psk(0, PSK, IDENTITY)

    # The module says the same on its own: +CME ERROR: 1301.
    with pytest.raises(st87.ATError) as e:
        modem.command("AT#TLSKEYADD=0,1,2,4,32," + PSK.hex())
    assert e.value.code == 1301


def test_bad_psk_input_raises_value_error_before_anything_is_sent(module):
    sent = []
    modem = started(module, trace=lambda d, b: sent.append(d))
    before = len(sent)
    secret = "8bf49643a691b9835a79c7c2a2de44ac0a4e2f1ec816c3ad1cea92a64d3127a"  # 63 digits
    cases = [
        (0, secret, IDENTITY, "odd number"),
        (0, "zz" * 32, IDENTITY, "not hex"),
        (0, bytes(33), IDENTITY, "1..32 bytes"),
        (0, b"", IDENTITY, "1..32 bytes"),
        (0, PSK, "", "identity"),
        (0, PSK, "x" * 129, "identity"),
        (16, PSK, IDENTITY, "sec_id"),
        (-1, PSK, IDENTITY, "sec_id"),
        ("0", PSK, IDENTITY, "sec_id"),
    ]
    for sec_id, key, identity, words in cases:
        with pytest.raises(ValueError, match=words) as e:
            modem.tls.add_psk(sec_id, key, identity)
        assert secret[:16] not in str(e.value)
    assert len(sent) == before


def test_peer_close_ends_the_stream(module, psk_server):
    modem = started(module)
    modem.tls.add_psk(0, PSK, IDENTITY)
    modem.attach(timeout_ms=10000)
    sock = modem.socket(st87.TCP, sec_id=0)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", psk_server.port))
    sock.write(b"CLOSE\n")  # s_server -rev closes the connection on this line
    while sock.recv(64):
        pass
    assert sock.state == st87.sockets.FAILED
    with pytest.raises(st87.ModemError):
        sock.send(b"more")
    sock.close()
    assert module.open_sockets() == []


def test_main_py_on_cpython_with_machine_injected(state, psk_server, monkeypatch):
    # main.py builds machine.UART(...) from its config; here machine is a fake module whose
    # UART is wired to the emulator, which routes the note's address to the local server.
    module = Module(state_path=state, routes={"192.168.21.4:4433": ("127.0.0.1", psk_server.port)})
    machine = types.ModuleType("machine")
    machine.UART = lambda *a, **kw: FakeUART(module, timeout=20)
    machine.Pin = lambda *a, **kw: None
    monkeypatch.setitem(sys.modules, "machine", machine)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import main

    cfg = {
        "uart": {"id": 1, "tx": 17, "rx": 16},
        "sec_id": 0,
        "psk": PSK.hex(),
        "identity": IDENTITY,
        "host": "192.168.21.4",
        "port_number": 4433,
        "trace": True,
    }
    out = io.StringIO()
    with redirect_stdout(out):
        main.run(cfg)
        main.run(cfg)  # the second run finds the profile provisioned
    module.close()
    text = out.getvalue()
    assert text.count("provisioning PSK profile 0") == 1
    assert "profile 0 already provisioned" in text
    replies = [ln for ln in text.splitlines() if ln.startswith("reply: ")]
    assert len(replies) == 2 and replies[0].startswith("reply: ") and "=sm_emitpu" in replies[0]
    assert PSK.hex() not in text.lower()


# The driver must work with every firmware variant PROTOCOL.md lists (section 7), and with
# every reply cut into single bytes.
@pytest.mark.parametrize(
    "profile, options, sec_id",
    [
        ("default", {"chunk": 1}, 0),
        ("fw31-alt", {}, 1),  # echo off, no CFUN gate, ids 1..9, short #IPREAD trailer
        ("fast", {"boot_noise": b"\x00\xfe\xff\x13"}, 15),
    ],
)
def test_session_on_every_firmware_variant(state, psk_server, profile, options, sec_id):
    module = Module(FirmwareProfile.named(profile), state_path=state, **options)
    lo, hi = module.profile.sec_ids[0], module.profile.sec_ids[-1]
    modem = st87.Modem(FakeUART(module, timeout=20), sec_ids=(lo, hi))
    modem.start(timeout_ms=10000)
    modem.tls.add_psk(sec_id, PSK, IDENTITY)
    modem.tls.save()
    modem.attach(timeout_ms=10000)
    with modem.socket(st87.TCP, sec_id=sec_id) as sock:
        sock.settimeout(10)
        sock.connect(("127.0.0.1", psk_server.port))
        sock.write(b"abc\r\nOK\r\n\n")
        got = b""
        while got.count(b"\n") < 3:
            got += sock.recv(64)
    assert got == b"cba\nKO\n\n"  # s_server strips the CR before reversing
    assert module.open_sockets() == []
    module.close()


def test_sleeping_module_loses_no_command(state):
    # The module sleeps after 1 s without traffic and swallows the first command it gets.
    profile = FirmwareProfile.named("sleepy").replace(sleep_hold_s=1.0)
    module = Module(profile, state_path=state)
    modem = st87.Modem(FakeUART(module, timeout=20), idle_probe_ms=500)
    modem.start(timeout_ms=10000)
    time.sleep(2.0)
    assert module.state == "asleep"
    assert modem.command("ATI", timeout_ms=1000) == [b"ST87M01"]

    # Without the probe the first command after sleep is lost, and only the resync after the
    # timeout brings the channel back.
    modem.channel.idle_probe_ms = None
    time.sleep(2.0)
    with pytest.raises(st87.ATTimeout):
        modem.command("ATI", timeout_ms=500)
    assert modem.command("ATI", timeout_ms=1000) == [b"ST87M01"]
    module.close()
