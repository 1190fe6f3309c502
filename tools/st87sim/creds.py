# The TLS credential commands (PROTOCOL.md section 4): PSK and identity, CA root and client
# certificates, EC private keys (imported or generated), CSR re-signing, listing and deleting.
#
# CredentialCommands is a mixin of Module: its handlers run on the module's worker thread and
# use the module's reply helpers (_info, _ok), its profile, its CFUN level and its ITS store.
#
# NOTE: these commands answer a bare "+CME ERROR" (no code) for every validation failure;
# only ITS outcomes (20, 1301, 1302) and a key/certificate mismatch (1303) carry a code.
#
# Secrets: a PSK or a private key is never printed, in a reply or a log; logs show lengths.

import logging

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import engine, its
from .atcmd import BARE, CmeError, hex_payload, ints, split_args, unquote

log = logging.getLogger("st87sim.creds")

ERR_MISMATCH = 1303  # key and certificate do not match [model]

# AT#TLSCERTADD / AT#TLSCERTDEL <type> -> ITS element kind, in listing order.
CERT_TYPES = {0: its.CERT, 1: its.CA, 2: its.PSK_IDENTITY}
# AT#TLSKEYDEL frees the key slot, whichever kind fills it.
KEY_KINDS = (its.PSK, its.KEY)

# AT#TLSKEYADD <type> bits 2-3 for an EC private key.
CURVES = {0: ec.SECP256R1, 1: ec.BrainpoolP256R1}
_TYPE_HEX = 0x80  # bit 7: the public key comes back as hex
_TYPE_PUBLIC = 0x02  # set in the reply's <type>: the note's 128 comes back as 130
# AT#TLSKEYADD <data_flag> bits.
_FLAG_GENERATE = 0x01
_FLAG_RETURN_PUBLIC = 0x02
_FLAG_RAW = 0x04
_STORAGE_FLASH = 2
_SCALAR_LEN = 32  # both curves are 256-bit

_SIGN_HEX = 128  # AT#TLSCERTSIGN <type>: the signed CSR comes back as hex

_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


# The command line with credential bodies replaced by their length, for logs.
def redact(text):
    head, sep, args = text.partition("=")
    if sep and head.upper() == "AT#TLSKEYADD":
        fields = args.split(",")
        if len(fields) >= 6:
            fields[5] = f"<{len(unquote(fields[5])) // 2} bytes>"
            return f"{head}={','.join(fields)}"
    return text


# An identity as #TLSCERTLIST shows it: the text when it is printable ASCII, else its hex.
def identity_text(data):
    if all(0x20 <= b < 0x7F and b not in b'",' for b in data):
        return data.decode("ascii")
    return data.hex().upper()


def public_der(public_key):
    return public_key.public_bytes(_DER, _SPKI)


# The stored key element as a cryptography private key.
def private_key(element):
    scalar = int.from_bytes(element["data"], "big")
    return ec.derive_private_key(scalar, CURVES[element["curve"]]())


def _load_cert(data):
    try:
        cert = x509.load_der_x509_certificate(data)
        cert.public_key()  # parsed lazily: an unknown key type fails only here
    except (ValueError, UnsupportedAlgorithm):
        raise CmeError(BARE) from None
    return cert


# One DER TLV at `pos`: (tag, start of the value, end of the value), or ValueError.
def _tlv(data, pos):
    if pos + 2 > len(data):
        raise ValueError("truncated")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 1 <= n <= 2 or pos + n > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated")
    return tag, pos, pos + length


# SEC1 ECPrivateKey is SEQUENCE { INTEGER 1, OCTET STRING key, ... }; PKCS#8 starts with
# INTEGER 0 (or 1) then an AlgorithmIdentifier SEQUENCE, so the second element tells them apart.
def _is_sec1(data):
    try:
        tag, start, end = _tlv(data, 0)
        if tag != 0x30 or end != len(data):
            return False
        tag, vstart, vend = _tlv(data, start)
        if tag != 0x02 or data[vstart:vend] != b"\x01":
            return False
        tag, _, _ = _tlv(data, vend)
        return tag == 0x04
    except ValueError:
        return False


# The 32-byte scalar of an imported key on the curve from <type>, or a bare error.
def _imported_scalar(data, curve, raw):
    if raw:
        if len(data) != _SCALAR_LEN:
            raise CmeError(BARE)
        try:
            ec.derive_private_key(int.from_bytes(data, "big"), CURVES[curve]())
        except ValueError:  # 0, or not below the group order
            raise CmeError(BARE) from None
        return data
    # NOTE [model]: DER means SEC1 ECPrivateKey, as in the note (121 bytes with the curve and
    # the public key); a PKCS#8 wrapper is refused, so drivers convert PKCS#8 themselves.
    if not _is_sec1(data):
        raise CmeError(BARE)
    try:
        key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CmeError(BARE) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != CURVES[curve].name:
        raise CmeError(BARE)
    return key.private_numbers().private_value.to_bytes(_SCALAR_LEN, "big")


# A new CSR: the dummy's subject and extensions, the profile's public key, signed with the
# profile's private key (application note 3.4).
def resign_csr(dummy_der, key):
    try:
        dummy = x509.load_der_x509_csr(dummy_der)
        builder = x509.CertificateSigningRequestBuilder().subject_name(dummy.subject)
        for ext in dummy.extensions:
            builder = builder.add_extension(ext.value, critical=ext.critical)
    except (ValueError, x509.DuplicateExtension, UnsupportedAlgorithm):
        raise CmeError(BARE) from None
    # TODO: CSR attributes other than the extension request (challengePassword...) are not
    # carried over.
    return builder.sign(key, hashes.SHA256()).public_bytes(_DER)


def _cert_time(when):
    return when.strftime("%Y%m%d%H%M%SZ")


class CredentialCommands:
    # --- shared checks ---

    def _tls_fields(self, args, lo, hi):
        fields = split_args(args)
        if not lo <= len(fields) <= hi:
            raise CmeError(BARE)
        return fields

    def _check_sec(self, sec):
        if sec not in self.profile.sec_ids:
            raise CmeError(BARE)

    def _check_writable(self, sec):
        self._check_sec(sec)
        if self.profile.cfun4_for_credentials and self._cfun != 4:
            log.info("credential write refused: CFUN is %d, the firmware wants 4", self._cfun)
            raise CmeError(BARE)

    # Any credential write or delete forgets the profile's kept TLS/DTLS sessions: they were
    # made with credentials it may no longer hold.
    def _store_add(self, sec, kind, element):
        try:
            self.store.add(sec, kind, element)
        except its.ItsError as exc:
            raise CmeError(exc.code) from None
        self.sessions.forget(sec)

    def _store_delete(self, sec, kinds):
        try:
            self.store.delete(sec, kinds)
        except its.ItsError as exc:
            raise CmeError(exc.code) from None
        self.sessions.forget(sec)

    # --- AT#TLSKEYADD=<sec>,<type>,<storage>,<data_flag>,<len>[,<data>] ---

    def _h_tlskeyadd(self, op, args):
        if op != "set":
            raise CmeError(BARE)
        fields = self._tls_fields(args, 5, 6)
        sec, ktype, storage, flag, length = ints(fields[:5], BARE)
        self._check_writable(sec)
        if not 1 <= storage <= 4:
            raise CmeError(BARE)
        # NOTE: <storage> (OTP/Flash/retention RAM/RAM) is kept but changes nothing: every
        # credential survives AT#RESET=1 in this model.
        if ktype == 1:
            self._add_psk(sec, storage, flag, length, fields)
        else:
            self._add_private_key(sec, ktype, storage, flag, length, fields)

    def _add_psk(self, sec, storage, flag, length, fields):
        # NOTE: a PSK is raw (data_flag 4), at most 32 bytes (mbed TLS's MBEDTLS_PSK_MAX_LEN,
        # the limit of the module's own TLS stack too [model]).
        if flag != 4 or len(fields) != 6 or not 1 <= length <= 32:
            # TODO: the binary form (length only, then raw bytes).
            raise CmeError(BARE)
        data = hex_payload(fields[5], length, BARE)
        self._store_add(sec, its.PSK, {"data": data, "storage": storage})
        self._ok()

    def _add_private_key(self, sec, ktype, storage, flag, length, fields):
        curve = (ktype >> 2) & 0x3
        if ktype & ~0x8C or curve not in CURVES or flag & ~0x07:
            raise CmeError(BARE)
        if not ktype & _TYPE_HEX:
            # TODO: <type> without bit 7 returns the public key in binary; its form is unknown.
            raise CmeError(BARE)
        if flag & _FLAG_GENERATE:
            # Generation: <len> is the key size in bytes, no data, Flash only [field].
            if flag & _FLAG_RAW or len(fields) != 5 or length != _SCALAR_LEN:
                raise CmeError(BARE)
            if storage != _STORAGE_FLASH:
                raise CmeError(BARE)
            key = ec.generate_private_key(CURVES[curve]())
            scalar = key.private_numbers().private_value.to_bytes(_SCALAR_LEN, "big")
            origin = "generated"
        else:
            if len(fields) != 6 or not 1 <= length <= 512:
                # TODO: the binary form (length only, then raw bytes).
                raise CmeError(BARE)
            data = hex_payload(fields[5], length, BARE)
            scalar = _imported_scalar(data, curve, raw=bool(flag & _FLAG_RAW))
            origin = "imported"
        element = {"data": scalar, "curve": curve, "storage": storage}
        public = public_der(private_key(element).public_key())
        cert = self.store.get(sec, its.CERT)
        if cert is not None and public_der(_load_cert(cert["data"]).public_key()) != public:
            log.info("profile %d: %s key does not match the client certificate", sec, origin)
            raise CmeError(ERR_MISMATCH)
        self._store_add(sec, its.KEY, element)
        log.info("profile %d: private key %s (%s)", sec, origin, CURVES[curve].name)
        if flag & _FLAG_RETURN_PUBLIC:
            self._info(f"#TLSKEYADD: {sec},{ktype | _TYPE_PUBLIC},{storage},{flag},{len(public)}")
            self._info(public.hex().upper())
        self._ok()

    # --- AT#TLSCERTADD=<sec>,<type>,<len>,<data>, or AT#TLSCERTADD=<sec>,2 ---

    def _h_tlscertadd(self, op, args):
        if op != "set":
            raise CmeError(BARE)
        fields = self._tls_fields(args, 2, 4)
        sec, ctype = ints(fields[:2], BARE)
        if len(fields) == 2:
            self._read_identity(sec, ctype)
            return
        self._check_writable(sec)
        if ctype not in CERT_TYPES:
            raise CmeError(BARE)
        (length,) = ints(fields[2:3], BARE)
        if len(fields) != 4:
            # NOTE: firmware 3.1 rejects the binary form for certificates [field].
            # TODO: the binary form (length only, then raw bytes) on profiles with
            # binary_certs; nothing says yet how the module asks for the bytes.
            raise CmeError(BARE)
        if ctype == 2:
            if not 1 <= length <= 128:  # [model]
                raise CmeError(BARE)
            data = hex_payload(fields[3], length, BARE)
            self._store_add(sec, its.PSK_IDENTITY, {"data": data})
            self._ok()
            return
        if length < 1:
            raise CmeError(BARE)
        data = hex_payload(fields[3], length, BARE)
        cert = _load_cert(data)
        if ctype == 1:
            self._check_ca_key(cert)
        else:
            key = self.store.get(sec, its.KEY)
            if key is not None:
                if public_der(cert.public_key()) != public_der(private_key(key).public_key()):
                    log.info("profile %d: client certificate does not match the key", sec)
                    raise CmeError(ERR_MISMATCH)
        self._store_add(sec, CERT_TYPES[ctype], {"data": data})
        self._ok()

    def _check_ca_key(self, cert):
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            log.info("CA refused: its key is %s, not EC", type(key).__name__)
            raise CmeError(BARE)
        if key.curve.name not in self.profile.ca_curves:
            log.info(
                "CA refused: curve %s is not one of %s", key.curve.name, self.profile.ca_curves
            )
            raise CmeError(BARE)

    def _read_identity(self, sec, ctype):
        self._check_sec(sec)
        if ctype != 2:
            raise CmeError(BARE)  # certificates cannot be read back
        element = self.store.get(sec, its.PSK_IDENTITY)
        if element is None:
            raise CmeError(its.ERR_MISSING)
        ident = element["data"]
        self._info(f"#TLSCERTADD: {sec},2,{len(ident)}")
        self._info(ident.hex().upper())
        self._ok()

    # --- AT#TLSCERTSIGN=<sec>,<type>,<len>,<data> ---

    # NOTE [model]: signing writes nothing to the ITS, so it works at any CFUN level.
    def _h_tlscertsign(self, op, args):
        if op != "set":
            raise CmeError(BARE)
        fields = self._tls_fields(args, 4, 4)
        sec, stype, length = ints(fields[:3], BARE)
        self._check_sec(sec)
        if stype != _SIGN_HEX or length < 1:
            # TODO: other <type> values (binary output); the note's 4.4.1 says 1, its
            # transcript 128.
            raise CmeError(BARE)
        dummy = hex_payload(fields[3], length, BARE)
        element = self.store.get(sec, its.KEY)
        if element is None:
            raise CmeError(its.ERR_MISSING)
        signed = resign_csr(dummy, private_key(element))
        log.info("profile %d: CSR re-signed (%d bytes in, %d out)", sec, length, len(signed))
        self._info(f"#TLSCERTSIGN: {sec},{stype},{len(signed)}")
        self._info(signed.hex().upper())
        self._ok()

    # --- listing and deleting ---

    def _listed_secs(self, op, args):
        if op == "exec":
            return self.store.sec_ids()
        if op == "set":
            (sec,) = ints(self._tls_fields(args, 1, 1), BARE)
            self._check_sec(sec)
            return [sec]
        raise CmeError(BARE)

    def _h_tlskeylist(self, op, args):
        if op == "test":
            self._ok()
            return
        for sec in self._listed_secs(op, args):
            psk = self.store.get(sec, its.PSK)
            if psk is not None:
                # kind 1 (PSK), no cipher, no curve, key size in bits; never the key.
                self._info(f"#TLSKEYLIST: {sec},1,0,0,{8 * len(psk['data'])}")
            key = self.store.get(sec, its.KEY)
            if key is not None:
                # kind 0 (private key), storage, curve, bits.
                self._info(f"#TLSKEYLIST: {sec},0,{key['storage']},{key['curve']},256")
        self._ok()

    def _h_tlscertlist(self, op, args):
        if op == "test":
            self._ok()
            return
        for sec in self._listed_secs(op, args):
            for ctype, kind in CERT_TYPES.items():
                element = self.store.get(sec, kind)
                if element is None:
                    continue
                if kind == its.PSK_IDENTITY:
                    self._info(f"#TLSCERTLIST: {sec},2,{identity_text(element['data'])}")
                    continue
                cert = _load_cert(element["data"])
                self._info(
                    f'#TLSCERTLIST: {sec},{ctype},"{cert.subject.rfc4514_string()}",'
                    f'"{cert.issuer.rfc4514_string()}",{_cert_time(cert.not_valid_before_utc)},'
                    f"{_cert_time(cert.not_valid_after_utc)}"
                )
        self._ok()

    # NOTE [model]: deleting is a credential write, so the CFUN=4 rule applies to it too.
    def _h_tlskeydel(self, op, args):
        if op != "set":
            raise CmeError(BARE)
        (sec,) = ints(self._tls_fields(args, 1, 1), BARE)
        self._check_writable(sec)
        self._store_delete(sec, KEY_KINDS)
        self._ok()

    def _h_tlscertdel(self, op, args):
        if op != "set":
            raise CmeError(BARE)
        fields = self._tls_fields(args, 1, 2)
        values = ints(fields, BARE)
        sec = values[0]
        self._check_writable(sec)
        if len(values) == 2:
            if values[1] not in CERT_TYPES:
                raise CmeError(BARE)
            kinds = [CERT_TYPES[values[1]]]
        else:
            kinds = list(CERT_TYPES.values())
        self._store_delete(sec, kinds)
        self._ok()

    # --- what AT#TCPCONNECT and AT#DTLSCONNECT give the engines ---

    def _credentials(self, sec):
        def data(kind):
            element = self.store.get(sec, kind)
            return element["data"] if element else None

        key = self.store.get(sec, its.KEY)
        key_der = None
        if key is not None:
            key_der = private_key(key).private_bytes(
                _DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        return engine.Credentials(
            psk=data(its.PSK),
            identity=data(its.PSK_IDENTITY),
            ca=data(its.CA),
            cert=data(its.CERT),
            key=key_der,
        )
