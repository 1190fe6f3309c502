# st87-sim: framing, start-up, network state and fault injection, in raw AT bytes.

import time

from sim_helpers import FAST, Host, booted

from st87sim import FakeUART, FirmwareProfile, Module

BOOT_URCS = b"\r\n#SYSSTART\r\n\r\n#SIMST: 1\r\n"
ATTACH_URCS = (
    b"\r\n+CEREG: 2\r\n\r\n+CSCON: 1\r\n\r\n+CGEV: ME PDN ACT 5\r\n"
    b"\r\n#IPCFG: 5,0,1\r\n\r\n+CEREG: 1\r\n"
)


def test_power_up_answers_1120_until_booted_then_ok():
    t0 = time.monotonic()
    with Module() as m:  # the default profile: 150 ms boot, 100 ms attach
        host = Host(FakeUART(m, timeout=20))
        assert host.expect(b"#REBOOT_RESET\r\n")[0] == b"\r\n#REBOOT_RESET\r\n"
        # Echo is on after power-up: the command line comes back first.
        assert host.cmd(b"AT") == b"AT\r\r\n+CME ERROR: 1120\r\n"
        got, _ = host.expect(b"+CEREG: 1\r\n")
        assert got == BOOT_URCS + ATTACH_URCS
        assert time.monotonic() - t0 >= 0.25
        assert host.cmd(b"AT") == b"AT\r\r\nOK\r\n"


def test_echo_on_then_off_after_ate0():
    with booted(echo=True) as (m, host):
        assert host.cmd(b"AT+CMEE?") == b"AT+CMEE?\r\r\n+CMEE: 1\r\n\r\nOK\r\n"
        assert host.cmd(b"ATE0") == b"ATE0\r\r\nOK\r\n"
        assert host.cmd(b"AT") == b"\r\nOK\r\n"
        assert host.cmd(b"ATE1") == b"\r\nOK\r\n"
        # CRLF from the host: the LF is ignored, the line still echoed as received.
        m.host_write(b"AT\r\n")
        assert host.expect(b"OK\r\n")[0] == b"AT\r\r\nOK\r\n"
        assert host.drain() == b""


def test_echo_off_after_power_up_on_the_alt_profile():
    with Module(FirmwareProfile.named("fw31-alt").replace(boot_ms=30, attach_ms=20)) as m:
        host = Host(FakeUART(m, timeout=20))
        host.wait_attached()
        assert host.cmd(b"AT") == b"\r\nOK\r\n"


def test_reset_reboots_with_host_urc_and_restores_defaults():
    with booted() as (m, host):
        assert host.cmd(b"AT+CMEE=0") == b"\r\nOK\r\n"
        assert host.cmd(b"AT#RESET=0") == b"\r\nOK\r\n"
        assert host.expect(b"#REBOOT_HOST\r\n")[0] == b"\r\n#REBOOT_HOST\r\n"
        # CMEE is back to 1 at once (the 1120 is numeric) and echo is back on.
        assert host.cmd(b"AT") == b"AT\r\r\n+CME ERROR: 1120\r\n"
        assert host.wait_attached() == BOOT_URCS + ATTACH_URCS
        assert host.cmd(b"AT+CMEE?") == b"AT+CMEE?\r\r\n+CMEE: 1\r\n\r\nOK\r\n"


def test_boot_noise_comes_before_the_reboot_urc():
    with Module(FAST, boot_noise=b"\x00\xff\xfe") as m:
        host = Host(FakeUART(m, timeout=20))
        assert host.expect(b"#REBOOT_RESET\r\n")[0] == b"\x00\xff\xfe\r\n#REBOOT_RESET\r\n"


def test_error_forms_and_unknown_commands():
    with booted() as (m, host):
        assert host.cmd(b"AT+NOSUCH") == b"\r\nERROR\r\n"
        assert host.cmd(b"HELLO") == b"\r\nERROR\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,3") == b"\r\n+CME ERROR: 2104\r\n"
        assert host.cmd(b"AT+CMEE=0") == b"\r\nOK\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,3") == b"\r\nERROR\r\n"
        assert host.cmd(b"AT+CMEE?") == b"\r\n+CMEE: 0\r\n\r\nOK\r\n"
        assert host.cmd(b"at+cmee=1") == b"\r\nOK\r\n"
        assert host.cmd(b'AT+CMEE="1"') == b"\r\nOK\r\n"


def test_line_over_the_cap_gets_no_reply_but_is_echoed():
    with booted(echo=True) as (m, host):
        long_line = b"AT+CGSN" + b"0" * (1600 - 7 + 1)
        host.send(long_line)
        assert host.drain(0.2) == long_line + b"\r"
        at_cap = b"AT+CMEE=1" + b" " * (1600 - 9)  # exactly 1600 characters: answered
        assert host.cmd(at_cap).endswith(b"\r\nOK\r\n")


def test_identity_and_network_reads():
    with booted() as (m, host):
        assert host.cmd(b"ATI") == b"\r\nST87M01\r\n\r\nOK\r\n"
        assert host.cmd(b"AT+CGMR").startswith(b"\r\nST87M01")
        imei = host.cmd(b"AT+CGSN").split(b"\r\n")[1]
        assert len(imei) == 15 and imei.isdigit()
        assert host.cmd(b"AT+CIMI").split(b"\r\n")[1].isdigit()
        assert host.cmd(b"AT+ICCID").startswith(b"\r\n+ICCID: ")
        assert host.cmd(b"AT+CEREG=2") == b"\r\nOK\r\n"
        assert host.cmd(b"AT+CEREG?") == b"\r\n+CEREG: 2,1\r\n\r\nOK\r\n"
        assert host.cmd(b"AT+CSCON=1") == b"\r\nOK\r\n"
        assert host.cmd(b"AT#IPCFG?") == b"\r\n#IPCFG: 5,0,1\r\n\r\nOK\r\n"
        assert host.cmd(b"AT+CGPADDR=5") == b'\r\n+CGPADDR: 5,"10.10.0.2"\r\n\r\nOK\r\n'
        assert host.cmd(b"AT+CFUN?") == b"\r\n+CFUN: 1\r\n\r\nOK\r\n"


def test_cfun4_takes_the_radio_down_and_cfun1_reattaches():
    with booted(FAST.replace(attach_ms=300)) as (m, host):
        assert host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1") == (
            b"\r\n#SOCKETCREATE: 0\r\n\r\nOK\r\n"
        )
        assert host.cmd(b"AT+CFUN=4") == b"\r\nOK\r\n"
        assert host.expect(b"#IPCFG: 5,0,0\r\n")[0] == b"\r\n+CEREG: 0\r\n\r\n#IPCFG: 5,0,0\r\n"
        assert m.open_sockets() == []
        assert host.cmd(b"AT+CEREG?") == b"\r\n+CEREG: 1,0\r\n\r\nOK\r\n"
        assert host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1") == b"\r\n+CME ERROR: 2106\r\n"
        assert host.cmd(b"AT+CFUN=1") == b"\r\nOK\r\n"
        assert host.cmd(b"AT+CEREG?") == b"\r\n+CEREG: 1,2\r\n\r\nOK\r\n"
        assert host.wait_attached() == ATTACH_URCS
        assert host.cmd(b"AT+CEREG?") == b"\r\n+CEREG: 1,1\r\n\r\nOK\r\n"


def test_cfun1_at_1_is_error_98_and_drops_then_restores_ip():
    with booted(FAST.replace(attach_ms=300)) as (m, host):
        assert host.cmd(b"AT+CFUN=1") == b"\r\n+CME ERROR: 98\r\n"
        assert host.expect(b"#IPCFG: 5,0,0\r\n")[0] == b"\r\n#IPCFG: 5,0,0\r\n"
        assert host.cmd(b"AT#IPCFG?") == b"\r\n#IPCFG: 5,0,0\r\n\r\nOK\r\n"
        assert host.wait_attached() == ATTACH_URCS
        assert host.cmd(b"AT#IPCFG?") == b"\r\n#IPCFG: 5,0,1\r\n\r\nOK\r\n"


def test_dns_needs_a_table():
    with booted() as (m, host):
        assert host.cmd(b"AT#DNS=5,0,localhost") == b"\r\n+CME ERROR: 2112\r\n"
    with booted(dns={"server.example": "127.0.0.1"}) as (m, host):
        assert host.cmd(b'AT#DNS=5,0,"server.example"') == b"\r\n#DNS: 127.0.0.1,300\r\n\r\nOK\r\n"
        assert host.cmd(b"AT#DNS=5,0,other.example") == b"\r\n+CME ERROR: 2171\r\n"


def test_sleeping_module_loses_the_first_command():
    profile = FAST.replace(sleep_enabled=True, sleep_hold_s=0.3)
    with booted(profile) as (m, host):
        assert host.cmd(b"AT") == b"\r\nOK\r\n"
        assert host.expect(b"#SLEEP \r\n", timeout=2)[0] == b"\r\n#ENERGY: 42\r\n#SLEEP \r\n"
        assert m.state == "asleep"
        host.send(b"AT+CMEE?")
        assert host.drain(0.1) == b""
        assert host.cmd(b"AT+CMEE?") == b"\r\n+CMEE: 1\r\n\r\nOK\r\n"


def test_chunked_delivery_one_byte_per_read():
    with booted(chunk=1) as (m, host):
        uart = host.uart
        uart.write(b"AT\r")
        pieces = []
        while True:
            b = uart.read(16)
            if b is None:
                break
            pieces.append(b)
        assert pieces == [bytes([c]) for c in b"\r\nOK\r\n"]


def test_fake_uart_contract():
    with booted() as (m, host):
        uart = host.uart
        assert uart.read() is None  # nothing within the timeout
        buf = bytearray(16)
        assert uart.readinto(memoryview(buf)[4:]) is None
        assert uart.write(b"AT\r") == 3
        time.sleep(0.05)
        assert uart.any() == 6
        assert uart.readinto(memoryview(buf)[4:], 3) == 3
        assert buf[4:7] == b"\r\nO"
        assert uart.read(10) == b"K\r\n"


def test_dropped_replies_late_replies_and_injection():
    with booted() as (m, host):
        m.drop_replies(1)
        host.send(b"AT+CMEE=0")
        assert host.drain(0.1) == b""
        assert host.cmd(b"AT+CMEE?") == b"\r\n+CMEE: 0\r\n\r\nOK\r\n"  # it did run

        m.late_reply_ms = 150
        t0 = time.monotonic()
        assert host.cmd(b"AT") == b"\r\nOK\r\n"
        assert time.monotonic() - t0 >= 0.15
        m.late_reply_ms = 0

        m.inject(b"\r\n#REBOOT_WD\r\n")
        assert host.drain() == b"\r\n#REBOOT_WD\r\n"


def test_power_cycle_reboots():
    with booted() as (m, host):
        m.power_cycle()
        assert host.expect(b"#REBOOT_RESET\r\n")[0] == b"\r\n#REBOOT_RESET\r\n"
        assert host.wait_attached() == BOOT_URCS + ATTACH_URCS


def test_cmee_2_gives_text_only_where_the_profile_has_it():
    with booted() as (m, host):
        assert host.cmd(b"AT+CMEE=2") == b"\r\nOK\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,3") == b"\r\n+CME ERROR: 2104\r\n"
    alt = FirmwareProfile.named("fw31-alt").replace(boot_ms=30, attach_ms=20)
    with booted(alt) as (m, host):
        assert host.cmd(b"AT+CMEE=2") == b"\r\nOK\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,3") == b"\r\n+CME ERROR: invalid socket id\r\n"


def test_profile_from_a_json_file(tmp_path):
    path = tmp_path / "fw.json"
    path.write_text(
        '{"base": "fw31-alt", "ipread_trailer": "\\r\\nOK\\r\\n", "sec_ids": [1, 2, 3],'
        ' "boot_ms": 5}'
    )
    profile = FirmwareProfile.load(str(path))
    assert profile.name == "fw"
    assert profile.ipread_trailer == b"\r\nOK\r\n"
    assert profile.sec_ids == range(1, 4)
    assert (profile.boot_ms, profile.echo_on_boot, profile.line_cap) == (5, False, 2048)
    assert FirmwareProfile.named("default") == FirmwareProfile()
    for bad in ('{"no_such_knob": 1}', "[1]"):
        path.write_text(bad)
        try:
            FirmwareProfile.load(str(path))
        except ValueError:
            continue
        raise AssertionError(bad)
