# st87-sim: PSK provisioning (PROTOCOL.md section 4), the ITS budget and commit semantics,
# in raw AT bytes.

import os

import pytest
from sim_helpers import FAST, VECTORS, booted

PSK_HEX = VECTORS["psk_4_2"]
IDENT_HEX = VECTORS["psk_identity_4_2_hex"]
IDENT_TEXT = VECTORS["psk_identity_4_2_text"]

OK = b"\r\nOK\r\n"
BARE = b"\r\n+CME ERROR\r\n"


def keyadd(sec, key_hex=PSK_HEX, storage=2):
    return b"AT#TLSKEYADD=%d,1,%d,4,%d,%s" % (sec, storage, len(key_hex) // 2, key_hex.encode())


def identadd(sec, ident_hex=IDENT_HEX):
    return b"AT#TLSCERTADD=%d,2,%d,%s" % (sec, len(ident_hex) // 2, ident_hex.encode())


@pytest.fixture
def state(tmp_path):
    return str(tmp_path / "its.json")


def test_note_4_2_transcript_needs_cfun4():
    with booted() as (m, host):
        # Firmware 3.1 refuses credential writes with the radio on: a bare +CME ERROR.
        assert host.cmd(keyadd(0)) == BARE
        assert host.cmd(identadd(0)) == BARE
        assert host.cmd(b"AT+CFUN=4") == OK
        host.drain()
        assert host.cmd(keyadd(0)) == OK
        assert host.cmd(identadd(0)) == OK
        assert host.cmd(b"AT#TLSKEYLIST") == b"\r\n#TLSKEYLIST: 0,1,0,0,256\r\n" + OK
        assert host.cmd(b"AT#TLSCERTLIST=0") == b"\r\n#TLSCERTLIST: 0,2,Client_identity\r\n" + OK
        # The identity reads back in uppercase hex; the key never does.
        assert host.cmd(b"AT#TLSCERTADD=0,2") == (
            b"\r\n#TLSCERTADD: 0,2,15\r\n\r\n" + IDENT_HEX.upper().encode() + b"\r\n" + OK
        )


def test_alt_profile_writes_with_radio_on_and_has_ids_1_to_9():
    from st87sim import FirmwareProfile

    alt = FirmwareProfile.named("fw31-alt").replace(boot_ms=30, attach_ms=20)
    with booted(alt) as (m, host):
        assert host.cmd(keyadd(1)) == OK
        assert host.cmd(keyadd(0)) == BARE
        assert host.cmd(keyadd(10)) == BARE


def test_validation_answers_a_bare_error():
    with booted() as (m, host):
        host.cmd(b"AT+CFUN=4")
        host.drain()
        bad = [
            b"AT#TLSKEYADD=0,1,2,4,31," + PSK_HEX.encode(),  # length is not hex/2
            b"AT#TLSKEYADD=0,1,2,4,32," + PSK_HEX[:-1].encode() + b"g",  # not hex
            b"AT#TLSKEYADD=16,1,2,4,32," + PSK_HEX.encode(),  # sec out of range
            b"AT#TLSKEYADD=0,1,5,4,32," + PSK_HEX.encode(),  # storage 1..4
            b"AT#TLSKEYADD=0,1,2,4,33," + PSK_HEX.encode() + b"00",  # over 32 bytes
            b"AT#TLSKEYADD=0,1,2,4",
            b"AT#TLSCERTADD=0,2,14," + IDENT_HEX.encode(),
            b"AT#TLSCERTADD=0,2,x," + IDENT_HEX.encode(),
        ]
        for line in bad:
            assert host.cmd(line) == BARE, line
        assert host.cmd(b"AT#TLSKEYLIST") == OK
        # Upper-case hex and quoted parameters are fine.
        assert host.cmd(b'AT#TLSKEYADD=0,1,2,4,32,"' + PSK_HEX.upper().encode() + b'"') == OK
        assert host.cmd(b'AT#TLSCERTADD="0",2,15,' + IDENT_HEX.upper().encode()) == OK


def test_rewrite_is_1301_until_deleted():
    with booted() as (m, host):
        host.cmd(b"AT+CFUN=4")
        host.drain()
        assert host.cmd(keyadd(0)) == OK
        assert host.cmd(identadd(0)) == OK
        assert host.cmd(keyadd(0)) == b"\r\n+CME ERROR: 1301\r\n"
        assert host.cmd(identadd(0)) == b"\r\n+CME ERROR: 1301\r\n"
        assert host.cmd(b"AT#TLSKEYDEL=0") == OK
        assert host.cmd(b"AT#TLSKEYDEL=0") == b"\r\n+CME ERROR: 1302\r\n"
        assert host.cmd(keyadd(0)) == OK
        assert host.cmd(b"AT#TLSCERTDEL=0,2") == OK
        assert host.cmd(b"AT#TLSCERTADD=0,2") == b"\r\n+CME ERROR: 1302\r\n"
        assert host.cmd(b"AT#TLSCERTDEL=0") == b"\r\n+CME ERROR: 1302\r\n"
        assert host.cmd(identadd(0)) == OK


def test_eleventh_its_file_is_error_20_and_stores_nothing():
    with booted() as (m, host):
        host.cmd(b"AT+CFUN=4")
        host.drain()
        # Five profiles with a PSK each: 5 headers + 5 keys = 10 files.
        for sec in range(5):
            assert host.cmd(keyadd(sec)) == OK
        assert m.store.file_count() == 10
        assert host.cmd(identadd(0)) == b"\r\n+CME ERROR: 20\r\n"
        assert host.cmd(keyadd(5)) == b"\r\n+CME ERROR: 20\r\n"
        assert host.cmd(b"AT#TLSCERTLIST") == OK
        assert host.cmd(b"AT#TLSCERTADD=0,2") == b"\r\n+CME ERROR: 1302\r\n"
        assert host.cmd(b"AT#TLSKEYLIST=5") == OK
        assert m.store.file_count() == 10
        # Freeing a whole profile frees its header too: two files, room for an identity.
        assert host.cmd(b"AT#TLSKEYDEL=4") == OK
        assert m.store.file_count() == 8
        assert host.cmd(identadd(0)) == OK
        assert m.store.file_count() == 9


def test_uncommitted_credentials_are_lost_on_power_cycle(state):
    with booted(state_path=state) as (m, host):
        host.cmd(b"AT+CFUN=4")
        host.drain()
        assert host.cmd(keyadd(0)) == OK
        assert host.cmd(identadd(0)) == OK
        assert host.cmd(b"AT#RESET=0") == OK  # a reboot without saving
        host.wait_attached()
        host.cmd(b"ATE0")
        assert host.cmd(b"AT#TLSKEYLIST") == OK
        host.cmd(b"AT+CFUN=4")
        host.drain()
        assert host.cmd(keyadd(0)) == OK
    # A new Module on the same state file is a power cycle.
    with booted(state_path=state) as (m, host):
        assert host.cmd(b"AT#TLSKEYLIST") == OK
        assert host.cmd(b"AT#TLSCERTLIST") == OK


def test_reset_1_commits_to_the_state_file(state):
    with booted(state_path=state) as (m, host):
        host.cmd(b"AT+CFUN=4")
        host.drain()
        assert host.cmd(keyadd(3)) == OK
        assert host.cmd(identadd(3)) == OK
        assert host.cmd(b"AT#RESET=1") == OK
        assert host.expect(b"#REBOOT_HOST\r\n")[0] == b"\r\n#REBOOT_HOST\r\n"
        host.wait_attached()
        host.cmd(b"ATE0")
        assert host.cmd(b"AT#TLSKEYLIST") == b"\r\n#TLSKEYLIST: 3,1,0,0,256\r\n" + OK
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    with booted(state_path=state) as (m, host):
        assert host.cmd(b"AT#TLSKEYLIST") == b"\r\n#TLSKEYLIST: 3,1,0,0,256\r\n" + OK
        assert host.cmd(b"AT#TLSCERTLIST") == b"\r\n#TLSCERTLIST: 3,2,Client_identity\r\n" + OK
        # A delete that is not committed comes back after the next power cycle.
        host.cmd(b"AT+CFUN=4")
        host.drain()
        assert host.cmd(b"AT#TLSKEYDEL=3") == OK
    with booted(state_path=state) as (m, host):
        assert host.cmd(b"AT#TLSKEYLIST") == b"\r\n#TLSKEYLIST: 3,1,0,0,256\r\n" + OK


def test_without_a_state_file_the_store_lives_in_memory():
    with booted(FAST) as (m, host):
        host.cmd(b"AT+CFUN=4")
        host.drain()
        assert host.cmd(keyadd(0)) == OK
        assert host.cmd(b"AT#RESET=1") == OK
        host.wait_attached()
        host.cmd(b"ATE0")
        assert host.cmd(b"AT#TLSKEYLIST") == b"\r\n#TLSKEYLIST: 0,1,0,0,256\r\n" + OK


def test_the_psk_never_reaches_the_logs(caplog, state):
    caplog.set_level("DEBUG", logger="st87sim")
    with booted(state_path=state) as (m, host):
        host.cmd(b"AT+CFUN=4")
        host.drain()
        host.cmd(keyadd(0))
        host.cmd(b"AT#TLSKEYADD=0,1,2,4,32," + PSK_HEX.encode())  # 1301: logged too
        host.cmd(b"AT#RESET=1")
        host.wait_attached()
    text = caplog.text.lower()
    assert "tlskeyadd=0,1,2,4,32,<32 bytes>" in text
    assert PSK_HEX not in text
    assert PSK_HEX[:16] not in text
