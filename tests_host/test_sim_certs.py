# st87-sim: certificate and EC key provisioning (PROTOCOL.md 4.1-4.4), in raw AT bytes: the
# note's transcripts, key/certificate matching, CA curves, CSR re-signing, listing, deleting
# and the ITS budget.

import os
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pki import PKI
from sim_helpers import FAST, OK, VECTORS, booted, certadd, keyadd_der, make_cert

BARE = b"\r\n+CME ERROR\r\n"
E1301 = b"\r\n+CME ERROR: 1301\r\n"
E1302 = b"\r\n+CME ERROR: 1302\r\n"
E1303 = b"\r\n+CME ERROR: 1303\r\n"

NOTE_KEY = bytes.fromhex(VECTORS["private_key_der_4_3"])
NOTE_PUBLIC = bytes.fromhex(VECTORS["public_key_returned"])
NOTE_CERT = bytes.fromhex(VECTORS["client_cert"])
NOTE_CSR = bytes.fromhex(VECTORS["dummy_csr_4_4"])
PSK_LINE = b"AT#TLSKEYADD=%d,1,2,4,32," + VECTORS["psk_4_2"].encode()

# "#TLSKEYADD: ..." or "#TLSCERTSIGN: ..." then a hex line, then OK.
HEX_REPLY = re.compile(rb"\r\n(#TLS\w+: [0-9,]+)\r\n\r\n([0-9A-F]+)\r\n\r\nOK\r\n")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_cas():
    return {
        "rsa": make_cert("rsa CA", rsa.generate_private_key(65537, 2048), ca=True),
        "p384": make_cert("p384 CA", ec.generate_private_key(ec.SECP384R1()), ca=True),
        "brainpool": make_cert("bp CA", ec.generate_private_key(ec.BrainpoolP256R1()), ca=True),
    }


def radio_off(host):
    assert host.cmd(b"AT+CFUN=4") == OK
    host.drain()


# The header line and the bytes of a reply with a hex line.
def hex_reply(reply):
    m = HEX_REPLY.fullmatch(reply)
    assert m, reply
    return m.group(1), bytes.fromhex(m.group(2).decode())


def spki(public_key):
    return public_key.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)


def sec1(key):
    return key.private_bytes(
        ser.Encoding.DER, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
    )


def test_note_4_3_imported_key_and_certificate():
    with booted() as (m, host):
        radio_off(host)
        # The note's CA hex is corrupt (1203 digits for 600 bytes): refused.
        assert (
            host.cmd(b"AT#TLSCERTADD=0,1,600," + VECTORS["ca_cert_4_3_as_printed"].encode())
            == BARE
        )
        head, public = hex_reply(host.cmd(keyadd_der(0, NOTE_KEY)))
        assert head == b"#TLSKEYADD: 0,130,2,2,91"
        assert public == NOTE_PUBLIC
        assert host.cmd(certadd(0, 0, NOTE_CERT)) == OK
        assert host.cmd(b"AT#TLSKEYLIST") == b"\r\n#TLSKEYLIST: 0,0,2,0,256\r\n" + OK
        assert host.cmd(b"AT#TLSCERTLIST=0") == (
            b'\r\n#TLSCERTLIST: 0,0,"CN=st.com,OU=IT,O=STM Inc.,L=Lehi,C=IT",'
            b'"1.2.840.113549.1.9.1=info@st.com,CN=www.st.com,OU=IPC,O=STM Inc.,L=Crema,'
            b'ST=Crema,C=IT",20250827181452Z,20260828181452Z\r\n' + OK
        )
        assert m.store.file_count() == 3


def test_note_csr_resigned_with_the_imported_key():
    with booted() as (m, host):
        # No key yet: 1302. Signing writes nothing, so it needs no CFUN=4.
        sign = b"AT#TLSCERTSIGN=0,128,%d,%s" % (len(NOTE_CSR), NOTE_CSR.hex().encode())
        assert host.cmd(sign) == E1302
        radio_off(host)
        host.cmd(keyadd_der(0, NOTE_KEY))
        assert host.cmd(b"AT+CFUN=1") == OK
        head, der = hex_reply(host.cmd(sign))
        assert head == b"#TLSCERTSIGN: 0,128,%d" % len(der)
        check_resigned(der, NOTE_CSR, NOTE_PUBLIC)


# Section 3.4: the subject (and extensions) stay, the key is the module's, signed by it.
def check_resigned(der, dummy_der, public):
    signed = x509.load_der_x509_csr(der)
    dummy = x509.load_der_x509_csr(dummy_der)
    assert signed.subject.public_bytes() == dummy.subject.public_bytes()
    assert list(signed.extensions) == list(dummy.extensions)
    assert spki(signed.public_key()) == public
    assert signed.is_signature_valid
    signed.public_key().verify(
        signed.signature, signed.tbs_certrequest_bytes, ec.ECDSA(hashes.SHA256())
    )
    assert signed.signature_hash_algorithm.name == "sha256"


@pytest.mark.parametrize("ktype, curve", [(128, ec.SECP256R1()), (132, ec.BrainpoolP256R1())])
def test_generated_key_signs_a_csr(ktype, curve):
    dummy_key = ec.generate_private_key(ec.SECP256R1())
    dummy = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=device 7,O=st87"))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("dev7.example")]), False)
        .sign(dummy_key, hashes.SHA256())
        .public_bytes(ser.Encoding.DER)
    )
    with booted() as (m, host):
        radio_off(host)
        # Generation is Flash only, with <len> 32 and no data.
        assert host.cmd(b"AT#TLSKEYADD=0,%d,4,3,32" % ktype) == BARE
        assert host.cmd(b"AT#TLSKEYADD=0,%d,2,3,16" % ktype) == BARE
        assert host.cmd(b"AT#TLSKEYADD=0,%d,2,3,32,00" % ktype) == BARE
        head, public = hex_reply(host.cmd(b"AT#TLSKEYADD=0,%d,2,3,32" % ktype))
        assert head == b"#TLSKEYADD: 0,%d,2,3,%d" % (ktype | 2, len(public))
        key = ser.load_der_public_key(public)
        assert key.curve.name == curve.name
        assert host.cmd(b"AT#TLSKEYLIST=0") == (
            b"\r\n#TLSKEYLIST: 0,0,2,%d,256\r\n" % (ktype >> 2 & 3) + OK
        )
        sign = b"AT#TLSCERTSIGN=0,128,%d,%s" % (len(dummy), dummy.hex().encode())
        _, der = hex_reply(host.cmd(sign))
        check_resigned(der, dummy, public)
        assert dummy_key.public_key() != x509.load_der_x509_csr(der).public_key()


def test_generate_without_returning_the_public_key_is_just_ok():
    with booted() as (m, host):
        radio_off(host)
        assert host.cmd(b"AT#TLSKEYADD=3,128,2,1,32") == OK
        assert host.cmd(b"AT#TLSKEYLIST=3") == b"\r\n#TLSKEYLIST: 3,0,2,0,256\r\n" + OK


def test_key_then_mismatching_certificate_is_1303_and_stores_nothing(pki):
    other = ec.generate_private_key(ec.SECP256R1())
    with booted() as (m, host):
        radio_off(host)
        assert host.cmd(keyadd_der(0, sec1(other))).endswith(OK)
        assert host.cmd(certadd(0, 0, pki.der("client"))) == E1303
        assert host.cmd(b"AT#TLSCERTLIST=0") == OK
        assert m.store.file_count() == 2
        # A generated key never matches a stored certificate; a raw import of the right
        # scalar does.
        assert host.cmd(b"AT#TLSKEYDEL=0") == OK
        assert host.cmd(certadd(0, 0, pki.der("client"))) == OK
        assert host.cmd(b"AT#TLSKEYADD=0,128,2,3,32") == E1303
        assert host.cmd(b"AT#TLSKEYLIST=0") == OK
        scalar = pki.keys["client"].private_numbers().private_value.to_bytes(32, "big")
        head, public = hex_reply(host.cmd(b"AT#TLSKEYADD=0,128,2,6,32," + scalar.hex().encode()))
        assert head == b"#TLSKEYADD: 0,130,2,6,91"
        assert public == spki(pki.keys["client"].public_key())


def test_certificate_then_mismatching_key_is_1303_and_stores_nothing(pki):
    other = ec.generate_private_key(ec.SECP256R1())
    with booted() as (m, host):
        radio_off(host)
        assert host.cmd(certadd(0, 0, pki.der("client"))) == OK
        assert host.cmd(keyadd_der(0, sec1(other))) == E1303
        raw = other.private_numbers().private_value.to_bytes(32, "big").hex().encode()
        assert host.cmd(b"AT#TLSKEYADD=0,128,2,6,32," + raw) == E1303
        assert host.cmd(b"AT#TLSKEYLIST=0") == OK
        assert m.store.file_count() == 2
        assert host.cmd(keyadd_der(0, pki.key_der("client"))).endswith(OK)
        assert m.store.file_count() == 3


def test_key_import_validation():
    p256 = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = p256.private_bytes(ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    with booted() as (m, host):
        radio_off(host)
        bad = [
            keyadd_der(0, pkcs8),  # PKCS#8: the driver converts it to raw itself
            keyadd_der(0, sec1(ec.generate_private_key(ec.SECP384R1()))),  # another curve
            keyadd_der(0, sec1(p256), ktype=132),  # P-256 key, brainpool <type>
            keyadd_der(0, sec1(p256)[:-1]),  # truncated
            keyadd_der(0, sec1(p256), ktype=136),  # curve bits 2
            keyadd_der(0, sec1(p256), ktype=0),  # binary public key output
            keyadd_der(0, sec1(p256), storage=5),
            keyadd_der(0, sec1(p256), flag=10),
            b"AT#TLSKEYADD=0,128,2,6,32," + b"00" * 32,  # scalar 0
            b"AT#TLSKEYADD=0,128,2,6,32," + b"ff" * 32,  # above the group order
            b"AT#TLSKEYADD=0,128,2,6,31," + b"11" * 31,
            b"AT#TLSKEYADD=0,128,2,2,121," + NOTE_KEY.hex().encode()[:-2],  # length
            b"AT#TLSKEYADD=0,128,2,2,121",  # binary form
        ]
        for line in bad:
            assert host.cmd(line) == BARE, line[:60]
        assert m.store.file_count() == 0
        # A raw brainpool scalar: <type> 132 comes back as 134.
        head, public = hex_reply(host.cmd(b"AT#TLSKEYADD=0,132,3,6,32," + b"11" * 32))
        assert head == b"#TLSKEYADD: 0,134,3,6,%d" % len(public)
        assert ser.load_der_public_key(public).curve.name == "brainpoolP256r1"
        assert host.cmd(b"AT#TLSKEYLIST") == b"\r\n#TLSKEYLIST: 0,0,3,1,256\r\n" + OK


def test_psk_and_private_key_share_the_key_slot():
    with booted() as (m, host):
        radio_off(host)
        assert host.cmd(PSK_LINE % 0) == OK
        assert host.cmd(keyadd_der(0, NOTE_KEY)) == E1301
        assert host.cmd(b"AT#TLSKEYADD=0,128,2,3,32") == E1301
        assert host.cmd(b"AT#TLSKEYADD=1,128,2,3,32").endswith(OK)
        assert host.cmd(PSK_LINE % 1) == E1301
        assert host.cmd(b"AT#TLSKEYLIST") == (
            b"\r\n#TLSKEYLIST: 0,1,0,0,256\r\n\r\n#TLSKEYLIST: 1,0,2,0,256\r\n" + OK
        )
        # AT#TLSKEYDEL frees the slot whatever fills it.
        assert host.cmd(b"AT#TLSKEYDEL=1") == OK
        assert host.cmd(PSK_LINE % 1) == OK
        assert host.cmd(b"AT#TLSKEYDEL=0") == OK
        assert host.cmd(keyadd_der(0, NOTE_KEY)).endswith(OK)


def test_ca_curves_on_the_default_profile(other_cas, pki):
    with booted() as (m, host):
        radio_off(host)
        assert host.cmd(certadd(0, 1, other_cas["rsa"])) == BARE
        assert host.cmd(certadd(0, 1, other_cas["p384"])) == BARE
        assert m.store.file_count() == 0
        assert host.cmd(certadd(0, 1, other_cas["brainpool"])) == OK
        assert host.cmd(certadd(1, 1, pki.der("ca"))) == OK


def test_alt_profile_also_takes_p384_cas(other_cas):
    from st87sim import FirmwareProfile

    alt = FirmwareProfile.named("fw31-alt").replace(boot_ms=30, attach_ms=20)
    with booted(alt) as (m, host):
        assert host.cmd(certadd(1, 1, other_cas["rsa"])) == BARE
        assert host.cmd(certadd(1, 1, other_cas["p384"])) == OK


def test_certificate_validation(pki):
    ca = pki.der("ca")
    with booted() as (m, host):
        # Radio on: refused like every credential write.
        assert host.cmd(certadd(0, 1, ca)) == BARE
        radio_off(host)
        bad = [
            b"AT#TLSCERTADD=0,1,%d,%s" % (len(ca) + 1, ca.hex().encode()),  # length
            b"AT#TLSCERTADD=0,1,%d,%s" % (len(ca) - 1, ca.hex().encode()[:-2]),  # truncated
            b"AT#TLSCERTADD=0,1,4,30020101",  # not a certificate
            b"AT#TLSCERTADD=0,1,%d" % len(ca),  # binary form: not on firmware 3.1
            b"AT#TLSCERTADD=0,3,%d,%s" % (len(ca), ca.hex().encode()),  # type
            b"AT#TLSCERTADD=0,1",  # certificates cannot be read back
            b"AT#TLSCERTADD=16,1,%d,%s" % (len(ca), ca.hex().encode()),
        ]
        for line in bad:
            assert host.cmd(line) == BARE, line[:40]
        assert m.store.file_count() == 0
        assert host.cmd(certadd(0, 1, ca)) == OK
        assert host.cmd(certadd(0, 1, ca)) == E1301
        # A client certificate needs no key before it.
        assert host.cmd(certadd(0, 0, pki.der("client"))) == OK


def test_an_overlong_certificate_line_gets_no_reply(pki):
    key = ec.generate_private_key(ec.SECP256R1())
    big = make_cert("big", key, (pki.certs["ca"], pki.keys["ca"]), extra_names=40)
    assert len(big) > 800  # more than 1600 hex digits: over the default line cap
    with booted() as (m, host):
        radio_off(host)
        host.send(certadd(0, 0, big))
        assert host.drain(0.3) == b""
        assert host.cmd(b"AT") == OK
        assert host.cmd(b"AT#TLSCERTLIST") == OK
        assert len(certadd(0, 1, pki.der("ca"))) < FAST.line_cap
        assert host.cmd(certadd(0, 1, pki.der("ca"))) == OK


def test_listing_and_deleting(pki):
    ca, client = pki.certs["ca"], pki.certs["client"]

    def line(sec, ctype, cert):
        return (
            f'\r\n#TLSCERTLIST: {sec},{ctype},"{cert.subject.rfc4514_string()}",'
            f'"{cert.issuer.rfc4514_string()}",'
            f"{cert.not_valid_before_utc:%Y%m%d%H%M%S}Z,{cert.not_valid_after_utc:%Y%m%d%H%M%S}Z"
            "\r\n"
        ).encode()

    with booted() as (m, host):
        radio_off(host)
        host.cmd(certadd(4, 0, pki.der("client")))
        host.cmd(certadd(4, 1, pki.der("ca")))
        host.cmd(b"AT#TLSCERTADD=4,2,15," + VECTORS["psk_identity_4_2_hex"].encode())
        host.cmd(keyadd_der(4, pki.key_der("client")))
        host.cmd(certadd(2, 1, pki.der("ca")))
        assert line(4, 1, ca) == (
            b'\r\n#TLSCERTLIST: 4,1,"CN=st87 test CA,O=st87 tests","CN=st87 test CA,O=st87 tests",'
            + f"{ca.not_valid_before_utc:%Y%m%d%H%M%S}Z,".encode()
            + f"{ca.not_valid_after_utc:%Y%m%d%H%M%S}Z\r\n".encode()
        )
        everything = line(2, 1, ca) + line(4, 0, client) + line(4, 1, ca)
        everything += b"\r\n#TLSCERTLIST: 4,2,Client_identity\r\n"
        assert host.cmd(b"AT#TLSCERTLIST") == everything + OK
        assert host.cmd(b"AT#TLSCERTLIST=2") == line(2, 1, ca) + OK
        assert host.cmd(b"AT#TLSCERTLIST=3") == OK
        assert host.cmd(b"AT#TLSKEYLIST") == b"\r\n#TLSKEYLIST: 4,0,2,0,256\r\n" + OK
        assert m.store.file_count() == 7

        # By type, then the rest at once; a missing element is 1302.
        assert host.cmd(b"AT#TLSCERTDEL=4,1") == OK
        assert host.cmd(b"AT#TLSCERTDEL=4,1") == E1302
        assert host.cmd(b"AT#TLSCERTLIST=4") == (
            line(4, 0, client) + b"\r\n#TLSCERTLIST: 4,2,Client_identity\r\n" + OK
        )
        assert host.cmd(b"AT#TLSCERTDEL=4") == OK
        assert host.cmd(b"AT#TLSCERTLIST=4") == OK
        assert host.cmd(b"AT#TLSKEYLIST=4") == b"\r\n#TLSKEYLIST: 4,0,2,0,256\r\n" + OK
        assert host.cmd(b"AT#TLSKEYDEL=4") == OK
        assert host.cmd(b"AT#TLSKEYDEL=4") == E1302
        assert m.store.file_count() == 2  # profile 2: header and CA


def test_ten_files_with_certificates(pki):
    ca, cert, key = pki.der("ca"), pki.der("client"), pki.key_der("client")
    with booted() as (m, host):
        radio_off(host)
        # Two full profiles: 2 x (header + CA + key + certificate) = 8 files.
        for sec in (0, 1):
            for line in (certadd(sec, 1, ca), keyadd_der(sec, key), certadd(sec, 0, cert)):
                assert host.cmd(line).endswith(OK)
        assert m.store.file_count() == 8
        # A third profile: header and CA fit, its key would be the 11th file.
        assert host.cmd(certadd(2, 1, ca)) == OK
        assert host.cmd(keyadd_der(2, key)) == b"\r\n+CME ERROR: 20\r\n"
        assert host.cmd(b"AT#TLSKEYADD=2,128,2,3,32") == b"\r\n+CME ERROR: 20\r\n"
        assert host.cmd(b"AT#TLSCERTADD=0,2,15," + VECTORS["psk_identity_4_2_hex"].encode()) == (
            b"\r\n+CME ERROR: 20\r\n"
        )
        assert host.cmd(certadd(3, 1, ca)) == b"\r\n+CME ERROR: 20\r\n"
        assert m.store.file_count() == 10
        assert host.cmd(b"AT#TLSKEYLIST=2") == OK
        # Deleting profile 1's certificate makes room for profile 2's key.
        assert host.cmd(b"AT#TLSCERTDEL=1,0") == OK
        assert host.cmd(keyadd_der(2, key)).endswith(OK)
        assert m.store.file_count() == 10


def test_keys_and_certificates_survive_a_commit_and_never_reach_the_logs(caplog, tmp_path, pki):
    caplog.set_level("DEBUG", logger="st87sim")
    state = str(tmp_path / "its.json")
    scalar = pki.keys["client"].private_numbers().private_value.to_bytes(32, "big").hex()
    with booted(state_path=state) as (m, host):
        radio_off(host)
        host.cmd(certadd(0, 1, pki.der("ca")))
        host.cmd(keyadd_der(0, pki.key_der("client")))
        host.cmd(keyadd_der(0, pki.key_der("client")))  # 1301: logged too
        host.cmd(certadd(0, 0, pki.der("client")))
        _, generated = hex_reply(host.cmd(b"AT#TLSKEYADD=1,128,2,3,32"))
        assert host.cmd(b"AT#RESET=1") == OK
        host.wait_attached()
        host.cmd(b"ATE0")
        assert host.cmd(b"AT#TLSKEYLIST") == (
            b"\r\n#TLSKEYLIST: 0,0,2,0,256\r\n\r\n#TLSKEYLIST: 1,0,2,0,256\r\n" + OK
        )
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    with booted(state_path=state) as (m, host):
        # The generated key came back from the state file: the same public key signs.
        dummy = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name.from_rfc4514_string("CN=x"))
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
            .public_bytes(ser.Encoding.DER)
        )
        _, der = hex_reply(
            host.cmd(b"AT#TLSCERTSIGN=1,128,%d,%s" % (len(dummy), dummy.hex().encode()))
        )
        check_resigned(der, dummy, generated)
        generated_scalar = m.store.get(1, "key")["data"].hex()
    text = caplog.text.lower()
    assert "tlskeyadd=0,128,2,2,%d,<%d bytes>" % ((len(pki.key_der("client")),) * 2) in text
    for secret in (scalar, generated_scalar, pki.key_der("client").hex()):
        assert secret not in text
        assert secret[:16] not in text


def test_certsign_validation():
    with booted() as (m, host):
        radio_off(host)
        host.cmd(keyadd_der(0, NOTE_KEY))
        sign = b"AT#TLSCERTSIGN=0,%d,%d,%s"
        assert host.cmd(sign % (1, len(NOTE_CSR), NOTE_CSR.hex().encode())) == BARE
        assert host.cmd(sign % (128, len(NOTE_CSR) + 1, NOTE_CSR.hex().encode())) == BARE
        assert host.cmd(sign % (128, 4, b"30020101")) == BARE
        assert host.cmd(sign % (128, len(NOTE_CERT), NOTE_CERT.hex().encode())) == BARE
        assert host.cmd(b"AT#TLSCERTSIGN=16,128,4,30020101") == BARE
        assert host.cmd(b"AT#TLSCERTSIGN=0,128") == BARE
