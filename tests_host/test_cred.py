# st87-cred: the key and certificate tools round trip, `check` reports what the module would
# refuse, `at` prints exactly the application note's lines, and `provision` writes a profile
# into st87-sim (in-process and over its pty), verifies it, and leaves it alone the next time.

import datetime
import json
import os
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sim_helpers import VECTORS

from st87cred.certs import Certificate
from st87cred.cli import main
from st87cred.provision import listing_shows

CRED = os.path.join(os.path.dirname(sys.executable), "st87-cred")
PSK = VECTORS["psk_4_2"]
IDENTITY = VECTORS["psk_identity_4_2_text"]


# main(argv) in this process: (exit code, stdout, stderr).
def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# main(argv) that must succeed: its stdout.
def ok(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out


def run_script(*argv):
    proc = subprocess.run([CRED, *map(str, argv)], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.fixture
def note(tmp_path):
    # The note's 4.3 credentials as files, and its two corrupt CA copies as hex text.
    return {
        "cert": write(tmp_path / "client.der", bytes.fromhex(VECTORS["client_cert"])),
        "key": write(tmp_path / "key43.der", bytes.fromhex(VECTORS["private_key_der_4_3"])),
        "ca43": write(tmp_path / "ca43.hex", VECTORS["ca_cert_4_3_as_printed"] + "\n"),
        "ca44": write(tmp_path / "ca44.hex", VECTORS["ca_cert_4_4_as_printed"]),
    }


# A CA, a device key and its certificate made with the tool itself.
@pytest.fixture
def pki(tmp_path, capsys):
    p = {name: tmp_path / name for name in ("ca.pem", "ca.key", "dev.key", "dev.csr", "dev.der")}
    ok(capsys, "ca", "--out-cert", p["ca.pem"], "--out-key", p["ca.key"])
    ok(capsys, "keygen", "--out", p["dev.key"])
    subject = "CN=dev1,O=Acme"
    ok(capsys, "csr", "--subject", subject, "--key", p["dev.key"], "--out", p["dev.csr"])
    ok(capsys, *issue_argv(p, p["dev.csr"], p["dev.der"]))
    return p


def issue_argv(pki, csr, out):
    ca = ["--ca-cert", pki["ca.pem"], "--ca-key", pki["ca.key"]]
    return ["issue", "--csr", csr, *ca, "--out", out]


# Certificates the module must refuse, made directly with cryptography.
def foreign_cert(tmp_path, name, key, issuer=None, issuer_key=None, ca=False):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30 * 12))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key or key, hashes.SHA256())
    )
    return write(tmp_path / (name + ".der"), cert.public_bytes(serialization.Encoding.DER))


def pem_key(tmp_path, name, key):
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return write(tmp_path / name, data)


# The version INTEGER that opens a DER key: 0 for PKCS#8, 1 for SEC1.
def key_version(data):
    header = 2 + (data[1] & 0x7F if data[1] & 0x80 else 0)
    assert data[header : header + 2] == b"\x02\x01"
    return data[header + 2]


def findings(out):
    return [line for line in out.splitlines() if line]


# --- ca / keygen / csr / issue -------------------------------------------------------------


def test_round_trip(pki, capsys):
    ca = x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.public_key().curve.name == "secp256r1"
    cert = x509.load_der_x509_certificate(pki["dev.der"].read_bytes())
    assert cert.subject.rfc4514_string() == "CN=dev1,O=Acme"
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    key = serialization.load_pem_private_key(pki["dev.key"].read_bytes(), None)
    assert key.public_key() == cert.public_key()
    # Keys are for their owner only.
    assert os.stat(pki["ca.key"]).st_mode & 0o077 == 0
    assert os.stat(pki["dev.key"]).st_mode & 0o077 == 0
    # The CSR is DER by default: what AT#TLSCERTSIGN takes.
    csr = x509.load_der_x509_csr(pki["dev.csr"].read_bytes())
    assert csr.is_signature_valid


def test_keygen_forms_and_curves(tmp_path, capsys):
    out = tmp_path / "k.der"
    ok(capsys, "keygen", "--out", out, "--curve", "brainpoolP256r1", "--format", "der", "--pkcs8")
    key = serialization.load_der_private_key(out.read_bytes(), None)
    assert key.curve.name == "brainpoolP256r1"
    assert key_version(out.read_bytes()) == 0  # PKCS#8
    sec1 = tmp_path / "s.der"
    ok(capsys, "keygen", "--out", sec1, "--format", "der", "--sec1")
    assert key_version(sec1.read_bytes()) == 1  # SEC1
    # An existing key file is not replaced unless asked.
    code, _, err = run(capsys, "keygen", "--out", sec1)
    assert code == 2 and "exists" in err
    ok(capsys, "keygen", "--out", sec1, "--overwrite")


def test_dummy_csr_for_a_subject(tmp_path, capsys):
    out = tmp_path / "dummy.der"
    code, text, _ = run(
        capsys, "csr", "--subject", "CN=st.com,OU=IT,O=STM Inc.,L=Lehi,C=IT", "--out", out
    )
    assert code == 0 and "dummy" in text
    csr = x509.load_der_x509_csr(out.read_bytes())
    # The same subject as the note's dummy CSR (4.4.3).
    note = x509.load_der_x509_csr(bytes.fromhex(VECTORS["dummy_csr_4_4"]))
    assert csr.subject == note.subject
    pem = tmp_path / "dummy.pem"
    ok(capsys, "csr", "--subject", "/C=IT/O=STM Inc./CN=st.com", "--out", pem, "--pem")
    assert pem.read_bytes().startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    code, _, err = run(capsys, "csr", "--subject", "nonsense", "--out", out)
    assert code == 2 and err.startswith("st87-cred: error:")


def test_issue_refuses_a_tampered_csr(pki, tmp_path, capsys):
    data = bytearray(pki["dev.csr"].read_bytes())
    data[-1] ^= 0x01  # the last byte of the signature
    bad = write(tmp_path / "bad.csr", bytes(data))
    out = tmp_path / "bad.der"
    code, _, err = run(capsys, *issue_argv(pki, bad, out))
    assert code == 1
    assert "signature does not verify" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_issue_not_before_and_days(pki, tmp_path, capsys):
    out = tmp_path / "c.pem"
    when = ["--not-before", "2030-01-02T03:04:05Z"]
    ok(capsys, *issue_argv(pki, pki["dev.csr"], out), "--pem", "--days", "10", *when)
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert cert.not_valid_before_utc.isoformat() == "2030-01-02T03:04:05+00:00"
    assert cert.not_valid_after_utc.isoformat() == "2030-01-12T03:04:05+00:00"


# --- check ------------------------------------------------------------------------------------


def test_check_note_client_cert_expired_and_matching(note, capsys):
    code, out, err = run(capsys, "check", "--cert", note["cert"], "--key", note["key"])
    assert code == 1, out
    lines = findings(out)
    assert any(line.startswith("FAIL") and "expired on 2026-08-28" in line for line in lines)
    assert any(
        line.startswith("ok") and "matches the client certificate" in line for line in lines
    )
    assert err == ""
    # Judged before it expired, everything passes.
    code, out, _ = run(
        capsys, "check", "--cert", note["cert"], "--key", note["key"], "--at", "2026-01-01"
    )
    assert code == 0, out
    assert "days left" in out


def test_check_mismatching_key(note, pki, capsys):
    code, out, _ = run(
        capsys, "check", "--cert", note["cert"], "--key", pki["dev.key"], "--at", "2026-01-01"
    )
    assert code == 1
    assert any(line.startswith("FAIL") and "does not match" in line for line in findings(out)), out


def test_check_refuses_rsa_and_p384(tmp_path, capsys):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p384_key = ec.generate_private_key(ec.SECP384R1())
    for name, key in (("rsa", rsa_key), ("p384", p384_key)):
        ca = foreign_cert(tmp_path, name + "-ca", key, ca=True)
        code, out, _ = run(capsys, "check", "--ca", ca)
        assert code == 1, out
        line = [f for f in findings(out) if "CA certificate key" in f][0]
        assert line.startswith("FAIL"), line
        assert ("RSA" if name == "rsa" else "secp384r1") in line

        cert = foreign_cert(tmp_path, name + "-dev", key)
        keyfile = pem_key(tmp_path, name + ".pem", key)
        code, out, _ = run(capsys, "check", "--cert", cert, "--key", keyfile)
        assert code == 1, out
        fails = [f for f in findings(out) if f.startswith("FAIL")]
        assert any("client certificate key is" in f for f in fails), out
        assert any("refused" in f for f in fails), out  # the driver's verdict on the key


def test_check_direct_issuer(pki, tmp_path, capsys):
    # A server certificate from the tool's CA passes; one from another CA fails, by name and
    # by signature.
    server_key = tmp_path / "server.key"
    server_csr = tmp_path / "server.csr"
    server_cert = tmp_path / "server.der"
    ok(capsys, "keygen", "--out", server_key)
    argv = ["csr", "--subject", "CN=localhost", "--key", server_key, "--out", server_csr]
    ok(capsys, *argv)
    ok(capsys, *issue_argv(pki, server_csr, server_cert), "--server", "--dns", "localhost")
    code, out, _ = run(capsys, "check", "--ca", pki["ca.pem"], "--server-cert", server_cert)
    assert code == 0, out
    assert "issuer is the CA" in out and "verifies with the CA key" in out

    other_ca, other_key = tmp_path / "other.pem", tmp_path / "other.key"
    argv = ["ca", "--out-cert", other_ca, "--out-key", other_key, "--cn", "Other CA"]
    ok(capsys, *argv)
    code, out, _ = run(capsys, "check", "--ca", other_ca, "--server-cert", server_cert)
    assert code == 1
    fails = [f for f in findings(out) if f.startswith("FAIL")]
    assert len(fails) == 2, out
    assert "not by the CA" in fails[0] and "direct issuer" in fails[0]
    assert "does not verify" in fails[1]

    # Same name, another key: the name alone is not enough.
    impostor = ec.generate_private_key(ec.SECP256R1())
    ca = x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes())
    forged = foreign_cert(tmp_path, "forged", impostor, ca.subject, impostor)
    code, out, _ = run(capsys, "check", "--ca", pki["ca.pem"], "--server-cert", forged)
    assert code == 1
    fails = [f for f in findings(out) if f.startswith("FAIL")]
    assert len(fails) == 1 and "does not verify" in fails[0], out


def test_check_json(note, capsys):
    code, out, _ = run(capsys, "--json", "check", "--cert", note["cert"], "--key", note["key"])
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    by = {f["check"]: f for f in doc["findings"]}
    assert not by["cert.validity"]["ok"] and "2026-08-28" in by["cert.validity"]["message"]
    assert by["key.match"]["ok"]
    # A corrupt CA is a finding, with the lengths.
    code, out, _ = run(capsys, "check", "--ca", note["ca43"], "--json")
    doc = json.loads(out)
    assert code == 1 and not doc["ok"]
    assert "declares 600 bytes" in doc["findings"][0]["message"]


def test_check_line_cap(pki, capsys):
    code, out, _ = run(capsys, "check", "--cert", pki["dev.der"], "--line-cap", "500")
    assert code == 1
    line = [f for f in findings(out) if "line is" in f][0]
    assert line.startswith("FAIL") and "over the module's cap of 500" in line


# --- at ---------------------------------------------------------------------------------------


def test_at_note_4_3_golden(note):
    code, out, err = run_script("at", "--sec-id", 0, "--key", note["key"], "--cert", note["cert"])
    assert code == 0, err
    assert out.splitlines() == [
        "AT#TLSKEYADD=0,128,2,2,121," + VECTORS["private_key_der_4_3"].upper(),
        "AT#TLSCERTADD=0,0,459," + VECTORS["client_cert"].upper(),
    ]


@pytest.mark.parametrize("which,digits", [("ca43", 1203), ("ca44", 1199)])
def test_at_refuses_the_notes_corrupt_ca(note, capsys, which, digits):
    code, out, err = run(capsys, "at", "--sec-id", 0, "--ca", note[which])
    assert code == 1 and out == ""
    assert err.startswith("st87-cred: error: ") and err.count("\n") == 1
    assert "declares {} bytes".format(VECTORS["ca_cert_declared_length"]) in err
    assert "{} hex digits".format(digits) in err


def test_at_note_4_4_generate(capsys):
    code, out, _ = run(capsys, "at", "--sec-id", 0, "--generate")
    assert code == 0
    assert out.splitlines() == ["AT#TLSKEYADD=0,128,2,3,32"]


def test_at_note_4_2_psk(capsys):
    code, out, _ = run(capsys, "at", "--sec-id", 0, "--psk", PSK, "--identity", IDENTITY)
    assert code == 0
    assert out.splitlines() == [
        "AT#TLSKEYADD=0,1,2,4,32," + PSK.upper(),
        "AT#TLSCERTADD=0,2,15," + VECTORS["psk_identity_4_2_hex"].upper(),
    ]
    code, out, _ = run(
        capsys, "at", "--sec-id", 0, "--psk", PSK, "--identity", IDENTITY, "--redact", "--json"
    )
    doc = json.loads(out)
    assert doc == {
        "ok": True,
        "lines": [
            "AT#TLSKEYADD=0,1,2,4,32,<secret 32 bytes>",
            "AT#TLSCERTADD=0,2,15," + VECTORS["psk_identity_4_2_hex"].upper(),
        ],
    }
    assert PSK.upper() not in out


def test_at_redacts_an_imported_key(note, capsys):
    code, out, _ = run(capsys, "at", "--sec-id", 3, "--key", note["key"], "--redact")
    assert code == 0
    assert out.splitlines() == ["AT#TLSKEYADD=3,128,2,2,121,<secret 121 bytes>"]


def test_at_usage_and_plan_errors(note, pki, capsys):
    code, out, err = run(capsys, "at", "--sec-id", 0, "--psk", PSK)
    assert code == 2 and "--identity" in err
    code, out, err = run(capsys, "--json", "at", "--sec-id", 16, "--generate")
    assert code == 1 and json.loads(out) == {"ok": False, "error": err.split("error: ", 1)[1][:-1]}
    code, out, err = run(
        capsys, "at", "--sec-id", 0, "--key", pki["dev.key"], "--cert", note["cert"]
    )
    assert code == 1 and "do not match" in err
    code, out, err = run(capsys, "at", "--sec-id", 0, "--cert", note["cert"], "--line-cap", 900)
    assert code == 1 and "over the module's cap of 900" in err
    code, _, err = run(capsys, "at", "--sec-id", 0, "--ca", "/nonexistent/ca.pem")
    assert code == 2 and "cannot read" in err


# --- provision --------------------------------------------------------------------------------


def provision_args(pki, sec_id=0):
    creds = ["--ca", pki["ca.pem"], "--key", pki["dev.key"], "--cert", pki["dev.der"]]
    return ["provision", "--sec-id", sec_id, *creds]


# What a firmware shows of a certificate differs (PROTOCOL.md 4.4): st87-sim's quoted RFC
# 4514 names, mbed TLS's "C=IT, L=Lehi, ..." with dates, or common names only.
SIM_LISTING = (
    '"CN=st.com,OU=IT,O=STM Inc.,L=Lehi,C=IT",'
    '"1.2.840.113549.1.9.1=info@st.com,CN=www.st.com,OU=IPC,O=STM Inc.,L=Crema,ST=Crema,C=IT",'
    "20250827181452Z,20260828181452Z"
)
MBEDTLS_LISTING = (
    "C=IT, L=Lehi, O=STM Inc., OU=IT, CN=st.com,"
    "C=IT, ST=Crema, L=Crema, O=STM Inc., OU=IPC, CN=www.st.com, emailAddress=info@st.com,"
    "2025-08-27 18:14:52,2026-08-28 18:14:52"
)


@pytest.mark.parametrize(
    "detail,same",
    [
        (SIM_LISTING, True),
        (MBEDTLS_LISTING, True),
        ("st.com,www.st.com,250827181452Z,260828181452Z", True),
        ("st.com,www.st.com,250827181452Z,270828181452Z", False),
        ('"CN=st.com1","CN=www.st.com",20250827181452Z,20260828181452Z', False),
        ("", False),
    ],
)
def test_listing_comparison(detail, same):
    cert = Certificate.load(bytes.fromhex(VECTORS["client_cert"]))
    assert listing_shows(detail.encode(), cert)[0] is same


def test_provision_sim_mtls_twice(pki, tmp_path, capsys):
    state = tmp_path / "its.json"
    argv = provision_args(pki) + ["--sim", "--sim-state", state]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "wrote: CA certificate, private key, client certificate" in out
    assert "saved (AT#RESET=1)" in out
    assert "verified: every element is listed" in out
    saved = json.loads(state.read_text())["profiles"]["0"]
    assert sorted(saved) == ["ca", "cert", "key"]
    assert bytes.fromhex(saved["cert"]["data"]) == pki["dev.der"].read_bytes()

    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["nothing_to_write"] and doc["written"] == []
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "nothing to write" in out.splitlines()


def test_provision_pty_mtls_twice(pki, sim_pty):
    argv = provision_args(pki) + ["--port", sim_pty]
    code, out, err = run_script(*argv)
    assert code == 0, err
    assert "saved (AT#RESET=1)" in out and "verified: every element is listed" in out
    code, out, err = run_script(*argv)
    assert code == 0, err
    assert "nothing to write" in out.splitlines()


def test_provision_refuses_to_overwrite_then_forces(pki, tmp_path, capsys):
    state = tmp_path / "its.json"
    ok(capsys, *provision_args(pki), "--sim", "--sim-state", state)
    # A new certificate for the same key: the profile holds another one.
    new = tmp_path / "dev2.der"
    ok(capsys, *issue_argv(pki, pki["dev.csr"], new), "--not-before", "2026-06-01")
    argv = ["provision", "--sec-id", 0, "--sim", "--sim-state", state]
    argv += ["--key", pki["dev.key"], "--cert", new]
    code, out, err = run(capsys, *argv)
    assert code == 1 and "--force" in err and "different client certificate" in err
    code, out, err = run(capsys, *argv, "--force")
    assert code == 0, err
    assert "cleared" in out and "verified: every element is listed" in out
    saved = json.loads(state.read_text())["profiles"]["0"]
    assert sorted(saved) == ["cert", "key"]
    assert bytes.fromhex(saved["cert"]["data"]) == new.read_bytes()


def test_provision_generated_key_issues_and_writes(pki, tmp_path, capsys):
    state = tmp_path / "its.json"
    csr_out, cert_out = tmp_path / "signed.csr", tmp_path / "issued.der"
    argv = ["provision", "--sec-id", 1, "--sim", "--sim-state", state, "--ca", pki["ca.pem"]]
    argv += ["--generate", "--csr-subject", "CN=dev9,O=Acme"]
    argv += ["--ca-cert", pki["ca.pem"], "--ca-key", pki["ca.key"]]
    code, out, err = run(capsys, *argv, "--csr-out", csr_out, "--cert-out", cert_out)
    assert code == 0, err
    assert "module signed a CSR for CN=dev9,O=Acme" in out
    assert "verified: every element is listed" in out
    issued = x509.load_der_x509_certificate(cert_out.read_bytes())
    signed = x509.load_der_x509_csr(csr_out.read_bytes())
    assert signed.is_signature_valid and signed.public_key() == issued.public_key()
    ca = x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes())
    issued.verify_directly_issued_by(ca)

    # `issue` takes the CSR the module re-signed, as it is.
    again = tmp_path / "again.der"
    ok(capsys, *issue_argv(pki, csr_out, again))
    assert x509.load_der_x509_certificate(again.read_bytes()).public_key() == signed.public_key()

    code, out, _ = run(capsys, *argv)
    assert code == 0 and "nothing to write" in out.splitlines()


def test_provision_psk_verbose_trace_is_redacted(tmp_path):
    state = tmp_path / "its.json"
    argv = ["-v", "provision", "--sim", "--sim-state", state, "--sec-id", 2, "--no-save"]
    argv += ["--psk", PSK, "--identity", IDENTITY]
    code, out, err = run_script(*argv)
    assert code == 0, err
    assert "not saved" in out and "verified" in out
    assert "AT#TLSKEYADD=2,1,2,4,32,<secret 32 bytes>" in err
    assert PSK.upper() not in err and PSK not in err
    # --no-save: nothing was committed.
    assert not state.exists() or "2" not in json.loads(state.read_text())["profiles"]


def test_provision_usage_errors(pki, capsys):
    code, _, err = run(capsys, "provision", "--sec-id", 0, "--sim", "--generate")
    assert code == 2 and "--csr-subject" in err
    code, _, err = run(capsys, "provision", "--sec-id", 0, "--generate")
    assert code == 2 and "--port" in err
    argv = ["provision", "--sec-id", 0, "--port", "/dev/nonexistent-tty"]
    code, _, err = run(capsys, *argv, "--psk", PSK, "--identity", IDENTITY)
    assert code == 1 and "cannot open /dev/nonexistent-tty" in err
    assert "Traceback" not in err


def test_provision_stops_before_writing_when_the_its_is_full(pki, tmp_path, capsys):
    state = tmp_path / "its.json"
    for sec_id in (0, 1):  # 4 files each: a header, the CA, the key, the certificate
        ok(capsys, *provision_args(pki, sec_id), "--sim", "--sim-state", state)
    code, out, err = run(capsys, *provision_args(pki, 2), "--sim", "--sim-state", state)
    assert code == 1 and "ITS full" in err and "2 of 10 free" in err
    assert "wrote" not in out
    assert sorted(json.loads(state.read_text())["profiles"]) == ["0", "1"]


def test_encrypted_keys_and_psk_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ST87CRED_PASSWORD", "correct horse")
    ca, ca_key = tmp_path / "ca.pem", tmp_path / "ca.key"
    ok(capsys, "ca", "--out-cert", ca, "--out-key", ca_key, "--password")
    assert b"ENCRYPTED PRIVATE KEY" in ca_key.read_bytes()
    dev_key, csr, cert = tmp_path / "dev.key", tmp_path / "dev.csr", tmp_path / "dev.der"
    ok(capsys, "keygen", "--out", dev_key, "--password")
    ok(capsys, "csr", "--subject", "CN=dev", "--key", dev_key, "--out", csr)
    ok(capsys, *issue_argv({"ca.pem": ca, "ca.key": ca_key}, csr, cert))
    out = ok(capsys, "check", "--cert", cert, "--key", dev_key)
    assert "matches the client certificate" in out
    # `at` decrypts the key and gives the driver its SEC1 DER.
    line = ok(capsys, "at", "--sec-id", 0, "--key", dev_key).strip()
    assert line.startswith("AT#TLSKEYADD=0,128,2,2,121,")
    monkeypatch.setenv("ST87CRED_PASSWORD", "wrong")
    code, _, err = run(capsys, "at", "--sec-id", 0, "--key", dev_key)
    assert code == 1 and "wrong password" in err

    psk_file = write(tmp_path / "psk.hex", PSK + "\n")
    out = ok(capsys, "at", "--sec-id", 0, "--psk-file", psk_file, "--identity", IDENTITY)
    assert out.splitlines()[0] == "AT#TLSKEYADD=0,1,2,4,32," + PSK.upper()


def test_json_for_the_file_commands(tmp_path, capsys):
    doc = json.loads(ok(capsys, "--json", "keygen", "--out", tmp_path / "k.pem"))
    assert doc["ok"] and doc["curve"] == "secp256r1" and doc["public_key"].startswith("3059")
    argv = ["ca", "--out-cert", tmp_path / "c.der", "--out-key", tmp_path / "c.key"]
    doc = json.loads(ok(capsys, *argv, "--format", "der", "--cn", "Fleet", "--json"))
    assert doc["ok"] and doc["subject"] == "CN=Fleet"
    x509.load_der_x509_certificate((tmp_path / "c.der").read_bytes())
    code, out, err = run(capsys, "--json", "issue", "--csr", tmp_path / "missing.csr")
    assert code == 2 and json.loads(out)["ok"] is False and "required" in err
