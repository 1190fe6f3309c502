# tools/suites.py (`make suites`), on a few fast suites: the table, the final line, the
# --only filter, and that a failed row says why (and that the suite is read from the peer,
# not assumed).

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import suites  # noqa: E402

ROW = re.compile(r"^(TLS_\w+)\s+(0x[0-9A-F]{4})\s+((?:D?TLS) 1\.[23])\s+(PSK|ECDSA cert)\s+(.+)$")


def test_matrix_for_two_suites_prints_the_table_and_the_final_line():
    # By IANA name and by code; TLS 1.2 + DTLS 1.2 for the PSK suite, TLS 1.3 for the other.
    cmd = [sys.executable, os.path.join(ROOT, "tools", "suites.py")]
    cmd += ["--only", "TLS_PSK_WITH_AES_128_GCM_SHA256", "--only", "0x1301"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["suite", "code", "protocol", "credentials", "result"]
    rows = [ROW.match(line) for line in lines[1:-2]]
    assert all(rows), lines
    got = [(m.group(1), m.group(2), m.group(3), m.group(4)) for m in rows]
    assert got == [
        ("TLS_AES_128_GCM_SHA256", "0x1301", "TLS 1.3", "ECDSA cert"),
        ("TLS_PSK_WITH_AES_128_GCM_SHA256", "0x00A8", "TLS 1.2", "PSK"),
        ("TLS_PSK_WITH_AES_128_GCM_SHA256", "0x00A8", "DTLS 1.2", "PSK"),
    ]
    results = [m.group(5) for m in rows]
    for result in results:
        assert result == "negotiated" or re.match(r"failed: \S", result), result
    # A suite counts when all of its rows passed.
    n = (results[0] == "negotiated") + (results[1] == results[2] == "negotiated")
    assert lines[-1] == f"suites negotiated: {n}/2"
    assert re.fullmatch(r"\(3 rows in \d+ s\)", lines[-2])


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return suites.Bench(tmp_path_factory.mktemp("pki"))


def suite(name):
    return next(s for s in suites.SUITES if s.iana == name)


@pytest.mark.parametrize("protocol", [suites.TLS12, suites.DTLS12])
def test_a_row_reads_the_suite_from_the_peer(bench, protocol):
    # The peer allows GCM while the row checks for CCM_8: the module offers both and gets
    # GCM, and the row must say so instead of passing.
    ccm8, gcm = suite("TLS_PSK_WITH_AES_128_CCM_8"), suite("TLS_PSK_WITH_AES_128_GCM_SHA256")
    row = suites.run_row(bench, ccm8, protocol, peer_suite=gcm)
    assert not row.ok
    if protocol == suites.TLS12:
        assert row.result == (
            "failed: s_server negotiated TLSv1.2 PSK-AES128-GCM-SHA256, "
            "not TLSv1.2 PSK-AES128-CCM8"
        )
    else:
        assert row.result == (
            "failed: the DTLS server negotiated TLS-PSK-WITH-AES-128-GCM-SHA256 (0x00A8), "
            "not TLS-PSK-WITH-AES-128-CCM-8"
        )
    assert suites.run_row(bench, gcm, protocol).result == "negotiated"


def test_a_failed_handshake_carries_the_module_emulator_and_peer_reasons(bench, monkeypatch):
    # The module holds another PSK than the server.
    other = {"psk": bytes(32), "identity": suites.IDENTITY}
    monkeypatch.setattr(bench, "profile", lambda s: other)
    row = suites.run_row(bench, suite("TLS_PSK_WITH_AES_128_CCM"), suites.TLS12)
    assert not row.ok
    assert row.result.startswith("failed: AT#TCPCONNECT failed: +CME ERROR: 2152; st87-sim: ")
    assert "; s_server: " in row.result


def test_only_refuses_a_name_not_in_table_6():
    with pytest.raises(SystemExit, match="TLS_RSA_WITH_NULL_MD5: not a suite of Table 6"):
        suites.select_suites(["TLS_RSA_WITH_NULL_MD5"])
    # Any of a suite's names selects it; the order stays the note's.
    names = ["psk-aes128-ccm8", "TLS-ECDHE-PSK-WITH-AES-128-CBC-SHA256", "0x1305"]
    assert [s.code for s in suites.select_suites(names)] == [0x1305, 0xC037, 0xC0A8]
    assert len(suites.select_suites(None)) == len(suites.SUITES) == 15
