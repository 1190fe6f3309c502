# Local checks of credentials before anything is sent: st87.tls.plan() and st87.der, on keys
# and certificates made with `cryptography` (which the device itself never needs).

import datetime
import json
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from st87 import der, tls

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared")
VECTORS = json.load(open(os.path.join(SHARED, "vectors", "seed_vectors.json")))
NOTE_KEY = bytes.fromhex(VECTORS["private_key_der_4_3"])
NOTE_CERT = bytes.fromhex(VECTORS["client_cert"])


def self_signed(key, cn="test CA", names=0):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = x509.CertificateBuilder()
    if names:  # subjectAltNames, to make a certificate longer than one command line takes
        dns = [x509.DNSName(f"host{i}.example.com") for i in range(names)]
        builder = builder.add_extension(x509.SubjectAlternativeName(dns), critical=False)
    return (
        builder.subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
        .public_bytes(ser.Encoding.DER)
    )


def key_der(key, fmt):
    return key.private_bytes(ser.Encoding.DER, fmt, ser.NoEncryption())


def test_ca_on_p256_and_brainpool_accepted_rsa_and_p384_refused():
    for curve in (ec.SECP256R1(), ec.BrainpoolP256R1()):
        ca = self_signed(ec.generate_private_key(curve))
        (step,) = tls.plan(0, ca=ca)
        assert step.line() == b"AT#TLSCERTADD=0,1,%d,%s" % (len(ca), ca.hex().upper().encode())
    with pytest.raises(ValueError, match="RSA key: the module takes"):
        tls.plan(0, ca=self_signed(rsa.generate_private_key(65537, 2048)))
    with pytest.raises(ValueError, match="on secp384r1"):
        tls.plan(0, ca=self_signed(ec.generate_private_key(ec.SECP384R1())))
    # A firmware that takes P-384 roots: the caller says so.
    p384 = self_signed(ec.generate_private_key(ec.SECP384R1()))
    assert tls.plan(0, ca=p384, ca_curves=("secp256r1", "secp384r1"))[0].kind == "ca"


def test_pem_is_converted_to_der():
    key = ec.generate_private_key(ec.SECP256R1())
    ca = self_signed(key)
    pem = x509.load_der_x509_certificate(ca).public_bytes(ser.Encoding.PEM)
    assert tls.plan(1, ca=pem)[0].data == ca
    assert tls.plan(1, ca=pem.decode())[0].data == ca
    sec1_pem = key.private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
    )
    assert tls.plan(1, key=sec1_pem)[0].data == key_der(key, ser.PrivateFormat.TraditionalOpenSSL)


def test_key_forms_are_sent_as_the_module_takes_them():
    # SEC1 DER as is (data_flag 2); PKCS#8 as its raw scalar (data_flag 6); raw as raw; the
    # curve in bits 2-3 of <type>.
    (step,) = tls.plan(0, key=NOTE_KEY)
    assert step.head == b"AT#TLSKEYADD=0,128,2,2,121," and step.data == NOTE_KEY and step.secret

    key = ec.generate_private_key(ec.BrainpoolP256R1())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    (step,) = tls.plan(2, key=key_der(key, ser.PrivateFormat.PKCS8))
    assert step.head == b"AT#TLSKEYADD=2,132,2,6,32," and step.data == scalar

    (step,) = tls.plan(2, key=scalar, curve="brainpoolP256r1")
    assert step.head == b"AT#TLSKEYADD=2,132,2,6,32," and step.data == scalar

    (step,) = tls.plan(3, generate=True)
    assert step.line() == b"AT#TLSKEYADD=3,128,2,3,32"


def test_keys_the_module_refuses():
    with pytest.raises(ValueError, match="RSA private keys are refused"):
        tls.plan(0, key=key_der(rsa.generate_private_key(65537, 2048), ser.PrivateFormat.PKCS8))
    for fmt in (ser.PrivateFormat.PKCS8, ser.PrivateFormat.TraditionalOpenSSL):
        with pytest.raises(ValueError, match="secp384r1 are refused"):
            tls.plan(0, key=key_der(ec.generate_private_key(ec.SECP384R1()), fmt))
    with pytest.raises(ValueError, match="out of range"):
        tls.plan(0, key=bytes(32))
    with pytest.raises(ValueError, match="out of range"):
        tls.plan(0, key=b"\xff" * 32)


def test_key_and_certificate_mismatch_is_caught_locally():
    steps = tls.plan(0, key=NOTE_KEY, cert=NOTE_CERT)
    assert [s.kind for s in steps] == ["key", "cert"]  # key before certificate
    other = key_der(ec.generate_private_key(ec.SECP256R1()), ser.PrivateFormat.TraditionalOpenSSL)
    with pytest.raises(ValueError, match="do not match"):
        tls.plan(0, key=other, cert=NOTE_CERT)


def test_corrupt_and_malformed_der():
    for name, digits in (("ca_cert_4_3_as_printed", 1203), ("ca_cert_4_4_as_printed", 1199)):
        with pytest.raises(ValueError) as e:
            tls.plan(0, ca=VECTORS[name])
        assert "declares 600 bytes" in str(e.value) and f"{digits} hex digits" in str(e.value)
    with pytest.raises(ValueError, match="declares 459 bytes, the data has 458"):
        tls.plan(0, cert=NOTE_CERT[:-1])
    with pytest.raises(ValueError, match="declares 459 bytes, the data has 460"):
        tls.plan(0, cert=NOTE_CERT + b"\x00")
    with pytest.raises(ValueError, match="not DER"):
        tls.plan(0, cert=b"hello")


def test_line_cap_and_profile_range():
    big = self_signed(ec.generate_private_key(ec.SECP256R1()), names=30)
    with pytest.raises(ValueError, match="over the module's cap of 1600"):
        tls.plan(0, ca=big)
    assert tls.plan(0, ca=big, line_cap=2048)[0].length() < 2048
    for bad in (-1, 16, "0", None):
        with pytest.raises(ValueError, match="sec_id"):
            tls.plan(bad, generate=True)
    assert tls.plan(9, generate=True, sec_ids=(1, 9))[0].sec_id == 9
    with pytest.raises(ValueError, match="sec_id"):
        tls.plan(0, generate=True, sec_ids=(1, 9))


def test_step_repr_never_shows_the_key():
    (step,) = tls.plan(0, key=NOTE_KEY)
    assert NOTE_KEY.hex()[:20] not in repr(step).lower()
    assert "121 bytes" in repr(step)


def test_der_helpers_read_the_note_vectors():
    s, e = der.cert_spki(NOTE_CERT)
    assert NOTE_CERT[s:e] == bytes.fromhex(VECTORS["public_key_returned"])
    assert der.spki_curve(NOTE_CERT, s, e) == ("EC", "secp256r1", der.SECP256R1)
