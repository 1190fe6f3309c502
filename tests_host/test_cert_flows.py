# Certificate profiles through the library and the emulated module (in-process), against
# openssl s_server: what is stored, what is refused, and the handshakes.

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from peers import OpenSSLServer
from pki import PKI, server_args
from test_credentials import self_signed

import st87
from st87sim import FakeUART, Module

SEC = 2


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def module(tmp_path):
    m = Module(state_path=str(tmp_path / "its.json"))
    yield m
    m.close()


@pytest.fixture
def modem(module):
    modem = st87.Modem(FakeUART(module, timeout=20))
    modem.start(timeout_ms=10000)
    return modem


def session(modem, port, text=b"hello over certificates"):
    modem.attach(timeout_ms=10000)
    with modem.socket(st87.TCP, sec_id=SEC) as sock:
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.write(text + b"\n")
        got = b""
        while not got.endswith(b"\n"):
            got += sock.recv(128)
    return got


def test_mutual_tls_12_with_imported_key(modem, module, pki):
    modem.tls.write(
        modem.tls.plan(SEC, ca=pki.der("ca"), key=pki.key_der("client"), cert=pki.der("client"))
    )
    assert sorted(e[1] for e in modem.tls.list(SEC)) == ["ca", "cert", "key"]
    with OpenSSLServer(server_args(pki, "1.2", verify_client=True)) as server:
        assert session(modem, server.port) == b"setacifitrec revo olleh\n"
    assert module.open_sockets() == []


def test_generated_key_and_module_signed_csr(modem, pki):
    tls = modem.tls
    tls.add_ca(SEC, pki.der("ca"))
    public = tls.generate_key(SEC)
    dummy_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name.from_rfc4514_string("CN=unit 42,O=st87")
    dummy = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(dummy_key, hashes.SHA256())
        .public_bytes(ser.Encoding.DER)
    )
    signed = x509.load_der_x509_csr(tls.sign_csr(SEC, dummy))

    # Section 3.4: same subject, the module's key, signed by it.
    assert signed.subject == subject
    assert signed.is_signature_valid
    spki = signed.public_key().public_bytes(
        ser.Encoding.DER,
        ser.PublicFormat.SubjectPublicKeyInfo,
    )
    assert spki == public
    tls.add_cert(SEC, pki.issue(signed.public_bytes(ser.Encoding.DER)))
    with OpenSSLServer(server_args(pki, "1.3", verify_client=True)) as server:
        assert session(modem, server.port, b"abc") == b"cba\n"


@pytest.mark.parametrize(
    "case, version, cert, verify, ca",
    [
        ("wrong CA", "1.2", "rogue", False, True),
        ("expired server certificate", "1.2", "expired", False, True),
        ("client certificate asked, none held", "1.2", "server", True, True),
        ("TLS 1.3 with no CA", "1.3", "server", False, False),
    ],
)
def test_handshakes_that_must_fail(modem, module, pki, case, version, cert, verify, ca):
    creds = {"key": pki.key_der("client")} if not ca else {"ca": pki.der("ca")}
    modem.tls.write(modem.tls.plan(SEC, **creds))
    modem.attach(timeout_ms=10000)
    with OpenSSLServer(server_args(pki, version, cert, verify)) as server:
        sock = modem.socket(st87.TCP, sec_id=SEC)
        with pytest.raises(st87.ATError):
            sock.connect(("127.0.0.1", server.port))
    assert sock.state == st87.sockets.CLOSED
    assert module.open_sockets() == []


def test_key_certificate_mismatch_refused_in_both_orders(modem, pki):
    tls = modem.tls
    other = PKI.key_der_of(ec.generate_private_key(ec.SECP256R1()))

    # Key first, then a certificate for another key: the module refuses the certificate.
    tls.import_key(SEC, other)
    with pytest.raises(st87.ATError) as e:
        tls.add_cert(SEC, pki.der("client"))
    assert e.value.code == 1303
    assert [k for _, k, _ in tls.list(SEC)] == ["key"]

    # Certificate first, then a key that does not match it: the key is refused.
    tls.delete(SEC)
    tls.add_cert(SEC, pki.der("client"))
    with pytest.raises(st87.ATError) as e:
        tls.import_key(SEC, other)
    assert e.value.code == 1303
    assert [k for _, k, _ in tls.list(SEC)] == ["cert"]


def test_rsa_ca_refused_by_library_and_module(modem):
    rsa_ca = self_signed(rsa.generate_private_key(65537, 2048))
    with pytest.raises(ValueError, match="RSA"):
        modem.tls.add_ca(SEC, rsa_ca)
    # Sent anyway, the module refuses it with a bare +CME ERROR.
    modem.tls.delete(SEC)  # radio off, as writes need
    with pytest.raises(st87.ATError) as e:
        modem.command(b"AT#TLSCERTADD=2,1,%d,%s" % (len(rsa_ca), rsa_ca.hex().encode()))
    assert e.value.code is None
    assert modem.tls.list(SEC) == []


def test_budget_matches_what_the_module_enforces(modem, pki):
    tls = modem.tls
    # Three profiles of CA + key + cert: 3 x 4 = 12 files would not fit; the budget says where
    # it stops, and the module agrees.
    full = {"ca": pki.der("ca"), "key": pki.key_der("client"), "cert": pki.der("client")}
    for sec in (0, 1):
        assert tls.budget(tls.plan(sec, **full)) == (4, 10 - 4 * sec)
        tls.write(tls.plan(sec, **full))
    assert tls.files() == (8, 2)
    with pytest.raises(st87.ModemError, match="needs 4 files, 2 of 10 free"):
        tls.budget(tls.plan(2, **full))
    assert tls.budget(tls.plan(2, ca=pki.der("ca"))) == (2, 2)

    # Bypass the budget: the module takes the CA (with the profile's header, the two free
    # files) and refuses the key, which would be the 11th file.
    ca = tls.plan(2, ca=pki.der("ca"))[0]
    modem.channel.command(ca.head, hexdata=ca.data)
    key = tls.plan(2, key=pki.key_der("client"))[0]
    with pytest.raises(st87.ATError) as e:
        modem.channel.command(key.head, hexdata=key.data, secret=True)
    assert e.value.code == 20
    assert tls.files() == (10, 0)
    assert [k for _, k, _ in tls.list(2)] == ["ca"]
