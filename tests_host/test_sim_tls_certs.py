# st87-sim: real certificate handshakes against `openssl s_server`, in raw AT bytes: TLS 1.2
# (mbed TLS) and TLS 1.3 (Python's ssl), server authentication and mutual TLS, and the
# handshakes that must fail with +CME ERROR: 2152. -rev makes the server send each line back
# reversed, so data went both ways.

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from peers import OpenSSLServer
from pki import PKI
from sim_helpers import (
    OK,
    VECTORS,
    booted,
    certadd,
    keyadd_der,
    make_cert,
    provision,
    write_pem,
)

E2152 = b"\r\n+CME ERROR: 2152\r\n"
VERSION_FLAG = {"1.2": "-tls1_2", "1.3": "-tls1_3"}
PSK_HEX = VECTORS["psk_4_2"]
IDENT_HEX = VECTORS["psk_identity_4_2_hex"]
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = PKI(tmp_path_factory.mktemp("pki"))
    # A root that allows intermediates (the PKI's CA has path length 0), an intermediate, and
    # a server certificate it issued, which the server sends with the intermediate.
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert("st87 root", root_key, ca=True)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    root_cert = x509.load_der_x509_certificate(root)
    inter = make_cert("st87 intermediate", inter_key, (root_cert, root_key), ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    inter_cert = x509.load_der_x509_certificate(inter)
    leaf = make_cert("localhost", leaf_key, (inter_cert, inter_key), names=LOOPBACK_NAMES)
    pki.chain = {
        "root": root,
        "cert": write_pem(pki.path("chained"), der=leaf),
        "key": write_pem(pki.path("chained", key=True), key=leaf_key),
        "inter": write_pem(pki.path("intermediate"), der=inter),
    }
    return pki


def server(pki, version, name="server", verify=False):
    args = [VERSION_FLAG[version], "-cert", pki.path(name), "-key", pki.path(name, key=True)]
    if verify:
        args += ["-Verify", "1", "-CAfile", pki.path("ca")]
    return OpenSSLServer(args + ["-rev"])


def ca_only(pki, sec=0):
    return [certadd(sec, 1, pki.der("ca"))]


def mutual(pki, sec=0, ca=True):
    lines = [keyadd_der(sec, pki.key_der("client")), certadd(sec, 0, pki.der("client"))]
    return (ca_only(pki, sec) if ca else []) + lines


def connect(host, port, target=b"127.0.0.1", sec=0):
    assert host.cmd(b"AT#SOCKETCREATE=5,0,TCP,0,60,60,1,%d" % sec) == (
        b"\r\n#SOCKETCREATE: 0\r\n" + OK
    )
    return host.cmd(b"AT#TCPCONNECT=5,0,%s,%d" % (target, port), timeout=15)


# One line out, its reversal back.
def exchange(host, text=b"ST87M_NBIOT_TLS_test"):
    assert host.cmd(b"AT#IPSENDTCP=5,0,0," + text) == OK
    assert host.cmd(b"AT#IPSENDTCP=5,0,2,0A") == OK
    got = b""
    for _ in range(100):
        payload, _ = host.ipread(0)
        got += payload
        if got.endswith(b"\n"):
            break
        host.expect(b"#IPRECV: 5,0\r\n", timeout=5)
    assert got == text[::-1] + b"\n"


def negotiated(caplog):
    return [r.getMessage().rsplit(", ", 1)[1] for r in caplog.records if " via " in r.getMessage()]


@pytest.mark.parametrize("target", [b"127.0.0.1", b"localhost"])
def test_tls12_server_authentication(pki, caplog, target):
    caplog.set_level("INFO", logger="st87sim")
    with server(pki, "1.2") as srv, booted() as (m, host):
        provision(host, ca_only(pki))
        assert connect(host, srv.port, target) == OK
        exchange(host)
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
    # The TLS 1.3 attempt was refused, then TLS 1.2 with the note's first ECDSA suite.
    assert "refused TLS 1.3" in caplog.text
    assert negotiated(caplog) == ["TLSv1_2 TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"]


def test_tls12_mutual_with_imported_key_and_certificate(pki, caplog):
    caplog.set_level("INFO", logger="st87sim")
    with server(pki, "1.2", verify=True) as srv, booted() as (m, host):
        provision(host, mutual(pki))
        assert connect(host, srv.port) == OK
        exchange(host)
    assert negotiated(caplog)[0].startswith("TLSv1_2 TLS-ECDHE-ECDSA")


def test_tls12_without_a_ca_checks_no_server_certificate(pki):
    # Table 7: in TLS 1.2 the CA is optional; the client certificate still goes out.
    with server(pki, "1.2", name="rogue", verify=True) as srv, booted() as (m, host):
        provision(host, mutual(pki, ca=False))
        assert connect(host, srv.port) == OK
        exchange(host)


@pytest.mark.parametrize("target", [b"127.0.0.1", b"localhost"])
def test_tls13_server_authentication(pki, caplog, target):
    caplog.set_level("INFO", logger="st87sim")
    with server(pki, "1.3") as srv, booted() as (m, host):
        provision(host, ca_only(pki))
        assert connect(host, srv.port, target) == OK
        exchange(host)
    assert "refused TLS 1.3" not in caplog.text
    assert negotiated(caplog)[0].startswith("TLSv1.3 ")


def test_tls13_mutual_with_imported_key(pki):
    with server(pki, "1.3", verify=True) as srv, booted() as (m, host):
        provision(host, mutual(pki))
        assert connect(host, srv.port) == OK
        exchange(host)
        exchange(host, b"second line")


def test_tls13_mutual_with_generated_key_and_module_signed_csr(pki):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization as ser

    dummy = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=st87 device,O=st87 tests"))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        .public_bytes(ser.Encoding.DER)
    )
    with server(pki, "1.3", verify=True) as srv, booted() as (m, host):
        assert host.cmd(b"AT+CFUN=4") == OK
        host.expect(b"#IPCFG: 5,0,0\r\n")
        assert host.cmd(b"AT#TLSKEYADD=0,128,2,3,32").endswith(OK)
        reply = host.cmd(b"AT#TLSCERTSIGN=0,128,%d,%s" % (len(dummy), dummy.hex().encode()))
        signed = bytes.fromhex(reply.split(b"\r\n")[3].decode())
        for line in (*ca_only(pki), certadd(0, 0, pki.issue(signed))):
            assert host.cmd(line) == OK
        assert host.cmd(b"AT+CFUN=1") == OK
        host.wait_attached()
        assert connect(host, srv.port) == OK
        exchange(host)


def test_psk_and_ca_profile_falls_back_to_tls12_psk():
    with OpenSSLServer.psk(PSK_HEX, "Client_identity") as srv, booted() as (m, host):
        unrelated_ca = make_cert("unused CA", ec.generate_private_key(ec.SECP256R1()), ca=True)
        provision(
            host,
            [
                b"AT#TLSKEYADD=0,1,2,4,32," + PSK_HEX.encode(),
                b"AT#TLSCERTADD=0,2,15," + IDENT_HEX.encode(),
                certadd(0, 1, unrelated_ca),
            ],
        )
        assert connect(host, srv.port) == OK
        exchange(host)


FAILURES = [
    # (case, server version, server certificate, -Verify, profile lines, reason in the log)
    ("wrong CA", "1.2", "server", False, "ca-other", "TLS 1.2: TLSError([0x2700]"),
    ("wrong CA", "1.3", "server", False, "ca-other", "unable to get local issuer"),
    ("expired server certificate", "1.2", "expired", False, "ca", "TLS 1.2: TLSError([0x2700]"),
    ("expired server certificate", "1.3", "expired", False, "ca", "certificate has expired"),
    ("client certificate asked, none held", "1.2", "server", True, "ca", "fatal alert"),
    ("client certificate asked, none held", "1.3", "server", True, "ca", "asks for a client"),
    ("TLS 1.3-only server, no CA", "1.3", "server", False, "mutual-no-ca", "TLS 1.2: "),
    ("chain walking", "1.2", "chained", False, "root", "not issued by the profile's CA"),
    ("chain walking", "1.3", "chained", False, "root", "not issued by the profile's CA"),
]


@pytest.mark.parametrize(
    "case, version, cert, verify, profile, reason",
    FAILURES,
    ids=[f"{f[0]}-{f[1]}" for f in FAILURES],
)
def test_handshake_failures_are_2152_and_keep_the_socket(
    pki, caplog, case, version, cert, verify, profile, reason
):
    caplog.set_level("INFO", logger="st87sim")
    lines = {
        "ca": ca_only(pki),
        "ca-other": [certadd(0, 1, pki.der("other_ca"))],
        "mutual-no-ca": mutual(pki, ca=False),
        "root": [certadd(0, 1, pki.chain["root"])],
    }[profile]
    if cert == "chained":
        # The server sends its intermediate: a chain walker would accept it.
        srv = OpenSSLServer(
            [VERSION_FLAG[version], "-cert", pki.chain["cert"], "-key", pki.chain["key"]]
            + ["-cert_chain", pki.chain["inter"], "-rev"]
        )
    else:
        srv = server(pki, version, cert, verify)
    with srv, booted() as (m, host):
        provision(host, lines)
        assert connect(host, srv.port) == E2152
        [info] = m.open_sockets()
        assert (info.id, info.state, info.sec_id) == (0, "created", 0)
        assert host.cmd(b"AT#IPSENDTCP=5,0,0,x") == b"\r\n+CME ERROR: 2154\r\n"
        assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
        assert m.open_sockets() == []
    failed = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert len(failed) == 1 and reason in failed[0], failed
    if profile == "mutual-no-ca":
        assert "TLS 1.3" not in caplog.text  # Table 7: no CA, no TLS 1.3 attempt


def test_host_name_is_checked_when_one_is_given(pki):
    dns = {"device.example": "127.0.0.1"}
    with server(pki, "1.3") as srv13, server(pki, "1.2") as srv12, booted(dns=dns) as (m, host):
        provision(host, ca_only(pki))
        for srv in (srv13, srv12):
            assert connect(host, srv.port, b"device.example") == E2152
            assert host.cmd(b"AT#SOCKETCLOSE=5,0") == OK
