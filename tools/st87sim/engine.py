# The emulated module's TLS engine: real TLS clients on top of connected TCP sockets, plus a
# plain pass-through link with the same shape, so that the socket layer does not care which
# one it holds.
#
# - TLS 1.2: python-mbedtls (mbed TLS 2.28, sans-IO buffers), PSK and ECDHE-ECDSA suites.
# - TLS 1.3: Python's ssl (OpenSSL) on memory BIOs, certificates only.
#
# Version choice (tls_connect): the module supports TLS 1.2 and 1.3 and prefers 1.3. With a
# CA in the profile we first try a 1.3-only handshake; if the server refuses 1.3 (a
# protocol_version alert) we reconnect and run the TLS 1.2 handshake. Without a CA we never try
# 1.3, because the note's Table 7 makes the CA mandatory for it. Two libraries cannot share one
# ClientHello, hence two connections where the real module needs one.
#
# DTLS 1.2 (python-mbedtls too) is in dtls.py; it builds its configuration with
# mbedtls_options() from here. Session resumption for the mbed TLS paths is in sessions.py.

import base64
import dataclasses
import logging
import os
import socket
import ssl
import tempfile
import threading

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from mbedtls import exceptions as _mbedtls_errors
from mbedtls import pk as _pk
from mbedtls import tls as _tls
from mbedtls import x509 as _x509

from . import sessions
from .handshake import Handshake, Tally

log = logging.getLogger("st87sim.engine")

# PROTOCOL.md 4.6: the TLS 1.2 suites, in the note's order. The module offers every suite its
# credentials allow; we offer those mbedtls was built with.
_NOTE_ECDSA_SUITES = (
    "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
    "TLS-ECDHE-ECDSA-WITH-AES-128-CCM",
    "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8",
    "TLS-ECDHE-ECDSA-WITH-AES-256-CCM",
    "TLS-ECDHE-ECDSA-WITH-AES-256-CCM-8",
)
_NOTE_PSK_SUITES = (
    "TLS-PSK-WITH-AES-128-GCM-SHA256",
    "TLS-PSK-WITH-AES-128-CBC-SHA256",
    "TLS-PSK-WITH-AES-128-CCM-8",
    "TLS-PSK-WITH-AES-128-CCM",
    "TLS-PSK-WITH-AES-256-CCM",
    "TLS-PSK-WITH-AES-256-CCM-8",
    "TLS-ECDHE-PSK-WITH-AES-128-CBC-SHA256",
)
ECDSA_SUITES = tuple(s for s in _NOTE_ECDSA_SUITES if s in _tls.ciphers_available())
PSK_SUITES = tuple(s for s in _NOTE_PSK_SUITES if s in _tls.ciphers_available())

# TLS records carry at most 16 KiB of plaintext; read in pieces of that size.
_READ_CHUNK = 16384

# OpenSSL's reasons for "the server does not do TLS 1.3": its protocol_version alert, or a
# ServerHello for an older version.
_VERSION_REFUSED = frozenset(("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"))

# TLS record content type, and the handshake message types the TLS 1.3 attempt watches.
_HANDSHAKE = 22
_SERVER_HELLO = 2
_CERTIFICATE_REQUEST = 13


# What a security profile gives the engine for one handshake. Certificates are DER; the key
# is a PKCS#8 DER.
@dataclasses.dataclass(frozen=True)
class Credentials:
    psk: bytes | None = dataclasses.field(default=None, repr=False)
    identity: bytes | None = None
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = dataclasses.field(default=None, repr=False)

    def has_psk(self):
        return bool(self.psk and self.identity)

    # Any certificate material: the profile takes part in certificate (ECDHE-ECDSA) suites.
    def has_certs(self):
        return bool(self.ca or self.cert or self.key)

    def client_auth(self):
        return bool(self.cert and self.key)


class HandshakeError(Exception):
    pass


class _VersionRefused(Exception):
    pass


# The peer ended the stream (close_notify, a fatal alert, or a broken record).
class LinkClosed(Exception):
    pass


class PlainLink:
    def __init__(self, sock):
        self.sock = sock

    def send(self, data):
        self.sock.sendall(data)

    # Network bytes in, application bytes out.
    def decode(self, raw):
        return raw

    def shutdown(self):
        pass

    def describe(self):
        return "plain TCP"


# What the mbed TLS links (TlsLink here, dtls.DtlsLink) share: close_notify and the
# description, on a buffer self._buf guarded by self._lock and flushed by self._flush().
class MbedtlsLink:
    # Send close_notify; the peer may already be gone.
    def shutdown(self):
        with self._lock:
            try:
                self._buf.shutdown()
                self._flush()
            except (OSError, _mbedtls_errors.TLSError):
                pass

    def describe(self):
        return f"{self._buf.negotiated_tls_version().name} {self._buf.cipher()}"


# The LinkClosed for an mbed TLS read error.
def mbedtls_closed(exc):
    # close_notify comes here too (0x7880), as do fatal alerts.
    return LinkClosed(str(exc))


# Everything read_chunk() gives until it gives nothing, joined.
def _read_all(read_chunk):
    out = []
    while True:
        chunk = read_chunk()
        if not chunk:
            return b"".join(out)
        out.append(chunk)


# A TLS 1.2 session on python-mbedtls buffers.
class TlsLink(MbedtlsLink):
    def __init__(self, sock, buffer):
        self.sock = sock
        self._buf = buffer
        self.session = None  # the session to keep for resumption (sessions.save), if any
        # The reader thread decrypts while the AT thread encrypts; an mbedtls context is not
        # safe for that, so both go through this lock.
        self._lock = threading.Lock()

    def send(self, data):
        with self._lock:
            view = memoryview(data)
            while view:
                n = self._buf.write(view[:_READ_CHUNK])
                view = view[n:]
                self._flush()

    def decode(self, raw):
        with self._lock:
            self._buf.receive_from_network(raw)
            data = _read_all(self._read_chunk)
            self._flush()
        return data

    # One read's plaintext, b"" when there is none yet.
    def _read_chunk(self):
        try:
            # NOTE: python-mbedtls returns b"" once the records are consumed (ending _read_all)
            return self._buf.read(_READ_CHUNK)
        except (_tls.WantReadError, _tls.WantWriteError):
            return b""
        except _mbedtls_errors.TLSError as exc:
            raise mbedtls_closed(exc) from None

    def _flush(self, tally=None):
        while True:
            pending = self._buf.peek_outgoing(_READ_CHUNK)
            if not pending:
                return
            self.sock.sendall(pending)
            self._buf.consume_outgoing(len(pending))
            if tally is not None:
                tally.sent(pending)


# A TLS 1.3 session on an ssl.SSLObject with memory BIOs: the same shape as TlsLink.
class SslLink:
    def __init__(self, sock, obj, incoming, outgoing):
        self.sock = sock
        self._obj = obj
        self._in = incoming
        self._out = outgoing
        self._lock = threading.Lock()  # as in TlsLink: reader and AT thread share the object

    def send(self, data):
        with self._lock:
            self._obj.write(data)
            self._flush()

    def decode(self, raw):
        with self._lock:
            self._in.write(raw)
            data = _read_all(self._read_chunk)
            # Reading may answer post-handshake messages (a KeyUpdate, for one).
            self._flush()
        return data

    def _read_chunk(self):
        try:
            return self._obj.read(_READ_CHUNK)
        except ssl.SSLWantReadError:
            return b""
        except ssl.SSLZeroReturnError:
            raise LinkClosed("close_notify") from None
        except ssl.SSLError as exc:
            raise LinkClosed(exc.reason or str(exc)) from None

    def shutdown(self):
        with self._lock:
            try:
                self._obj.unwrap()
            except (ssl.SSLError, OSError):
                pass  # SSLWantReadError: the peer's close_notify is not awaited
            try:
                self._flush()
            except OSError:
                pass

    def describe(self):
        # From the cipher, not version(): that is None while OpenSSL handles a post-handshake
        # message (a TLS 1.3 NewSessionTicket) on the reader thread.
        name, version, _ = self._obj.cipher()
        return f"{version} {name}"

    def _flush(self, tally=None):
        pending = self._out.read()
        if pending:
            self.sock.sendall(pending)
            if tally is not None:
                tally.sent(pending)


# Run the client handshake for a security profile. connect() returns a new connected TCP
# socket (called twice when a TLS 1.3 attempt is refused); server_name is the SNI and the name
# checked against the certificate (None for an IP literal). session: a TLS 1.2 session kept
# from an earlier handshake (sessions.save), offered for resumption. new_record(protocol)
# returns the Handshake to fill in for each attempt. Returns a link whose .sock is the socket
# in use and whose .session is the session to keep, if any. Raises HandshakeError with a
# reason that holds no secret, or OSError from connect().
def tls_connect(connect, creds, server_name, timeout_s, *, session=None, new_record=None):
    if new_record is None:
        new_record = _scratch_record
    if not creds.has_psk() and not creds.has_certs():
        raise HandshakeError("the security profile holds no usable credentials")
    if creds.ca:
        sock = connect()
        tally = Tally(new_record("TLS 1.3"), datagram=False, resumption=False)
        try:
            return _finished(tally, _tls13(sock, creds, server_name, timeout_s, tally))
        except _VersionRefused as exc:
            sock.close()
            tally.finish(False, f"TLS 1.3 refused: {exc}")
            log.info("the server refused TLS 1.3 (%s); reconnecting for TLS 1.2", exc)
        except BaseException as exc:
            sock.close()
            tally.finish(False, str(exc))
            raise
    # TODO: a TLS 1.3 session (Python's ssl can resume one) is neither kept nor offered.
    sock = connect()
    tally = Tally(new_record("TLS 1.2"), datagram=False)
    try:
        return _finished(tally, _tls12(sock, creds, server_name, timeout_s, session, tally))
    except BaseException as exc:
        sock.close()
        tally.finish(False, str(exc))
        raise


def _scratch_record(protocol):
    return Handshake(protocol, sec_id=-1, peer=None)


def _finished(tally, link):
    tally.record.cipher = link.describe().split(" ", 1)[1]
    tally.finish(True)
    return link


# What a security profile gives an mbed TLS (D)TLS 1.2 client configuration: ciphers, PSK,
# trust store and client certificate, as keyword arguments of TLSConfiguration and
# DTLSConfiguration alike. Raises HandshakeError when the profile cannot take part.
def mbedtls_options(creds):
    # NOTE [model]: a profile with only a PSK offers only the PSK suites, as before
    # certificates existed; the ECDHE-ECDSA suites need some certificate material.
    ciphers = ECDSA_SUITES if creds.has_certs() else ()
    psk = None
    if creds.has_psk():
        try:
            psk = (creds.identity.decode("utf-8"), creds.psk)
        except UnicodeDecodeError:
            # NOTE: python-mbedtls takes the identity as text; a binary identity cannot be sent.
            raise HandshakeError("the PSK identity is not UTF-8 text") from None
        ciphers += PSK_SUITES
    if not ciphers:
        raise HandshakeError("the security profile holds no PSK identity")
    # Table 7: no CA, no server check in (D)TLS 1.2.
    options = {"validate_certificates": bool(creds.ca), "ciphers": ciphers}
    if psk is not None:
        options["pre_shared_key"] = psk
    if creds.ca:
        # The profile's CA is the only trust anchor: no system store. mbed TLS also checks
        # the validity dates, and the host name when there is one.
        options["trust_store"] = _tls.TrustStore([_x509.CRT.from_DER(creds.ca)])
    if creds.client_auth():
        # Sent only when the server asks (CertificateRequest); without it mbed TLS answers
        # an empty Certificate and a server that insists ends the handshake.
        options["certificate_chain"] = (
            (_x509.CRT.from_DER(creds.cert),),
            _pk.ECC.from_DER(creds.key),
        )
    return options


def _tls12(sock, creds, server_name, timeout_s, session, tally):
    options = mbedtls_options(creds)
    sock.settimeout(timeout_s)
    try:
        config = _tls.TLSConfiguration(
            lowest_supported_version=_tls.TLSVersion.TLSv1_2,
            highest_supported_version=_tls.TLSVersion.TLSv1_2,
            **options,
        )
        buf = _tls.ClientContext(config).wrap_buffers(server_name)
        if session is not None:
            tally.record.offered_session = sessions.offer(buf, session)
        link = TlsLink(sock, buf)
        while buf._handshake_state is not _tls.HandshakeStep.HANDSHAKE_OVER:
            try:
                buf.do_handshake()
            except _tls.WantReadError:
                link._flush(tally)
                raw = sock.recv(_READ_CHUNK)
                if not raw:
                    raise HandshakeError("the peer closed the connection during the handshake")
                tally.received(raw)
                buf.receive_from_network(raw)
            except _tls.WantWriteError:
                link._flush(tally)
        link._flush(tally)
    except socket.timeout:
        raise HandshakeError(f"TLS 1.2: no handshake progress within {timeout_s} s") from None
    except _mbedtls_errors.TLSError as exc:
        raise HandshakeError(f"TLS 1.2: {exc}") from None
    except OSError as exc:
        raise HandshakeError(f"socket error during the TLS 1.2 handshake: {exc}") from None
    finally:
        sock.settimeout(None)
    if creds.ca:
        check_issuer(buf.getpeercert(binary_form=True), creds.ca)
    # Taken now: closing the link resets the context, and the session with it.
    link.session = sessions.save(buf)
    return link


def _tls13(sock, creds, server_name, timeout_s, tally):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # loads no system CAs by itself
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    # NOTE: Python's ssl cannot restrict the TLS 1.3 suites (OpenSSL's SSL_CTX_set_ciphersuites
    # is not exposed), so the emulator offers OpenSSL's defaults, not only the note's three
    # (TLS_AES_128_GCM_SHA256, TLS_AES_128_CCM_SHA256, TLS_AES_128_CCM_8_SHA256).
    ctx.check_hostname = server_name is not None
    # The profile's CA is the trust anchor even when it is not self-signed.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        ctx.load_verify_locations(cadata=creds.ca)
        if creds.client_auth():
            _load_client_cert(ctx, creds)
    except ssl.SSLError as exc:
        raise HandshakeError(f"TLS 1.3: the profile's credentials do not load: {exc}") from None

    seen = set()  # handshake message types read from the server
    watching = hasattr(ctx, "_msg_callback")
    if watching:
        # A debugging hook of CPython, and the only way Python's ssl shows which handshake
        # messages came. The CertificateRequest matters because in TLS 1.3 the client ends
        # its handshake before the server judges the client certificate, so an empty answer
        # would look like a success. The ServerHello tells a server that never got as far as
        # choosing a version (and may well speak TLS 1.2) from one that failed us in 1.3.
        def watch(conn, direction, version, content_type, msg_type, data):
            if direction == "read" and content_type == _HANDSHAKE:
                seen.add(msg_type)

        ctx._msg_callback = watch
    # TODO: without _msg_callback, a server that wants a client certificate the profile lacks
    # is seen only by its alert after the connect, as a #SOCKETCLOSED.

    # The real module offers 1.2 and 1.3 in one ClientHello, so any server that fails before
    # its ServerHello may be a TLS 1.2 server put off by a 1.3-only hello: worth the retry.
    def refused():
        return watching and _SERVER_HELLO not in seen

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    link = SslLink(sock, obj, incoming, outgoing)
    sock.settimeout(timeout_s)
    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                link._flush(tally)
                raw = sock.recv(_READ_CHUNK)
                if not raw:
                    if refused():
                        raise _VersionRefused("closed before its ServerHello")
                    raise HandshakeError("the peer closed the connection during the handshake")
                tally.received(raw)
                incoming.write(raw)
        link._flush(tally)
    except ssl.SSLError as exc:
        if exc.reason in _VERSION_REFUSED or refused():
            raise _VersionRefused(exc.reason or str(exc)) from None
        detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        raise HandshakeError(f"TLS 1.3: {detail}") from None
    except socket.timeout:
        raise HandshakeError(f"TLS 1.3: no handshake progress within {timeout_s} s") from None
    except OSError as exc:
        raise HandshakeError(f"socket error during the TLS 1.3 handshake: {exc}") from None
    finally:
        sock.settimeout(None)
    if _CERTIFICATE_REQUEST in seen and not creds.client_auth():
        raise HandshakeError("TLS 1.3: the server asks for a client certificate; none stored")
    check_issuer(obj.getpeercert(binary_form=True), creds.ca)
    return link


# Python's ssl loads a certificate and key only from a file: write both to a private temporary
# file and delete it at once.
def _load_client_cert(ctx, creds):
    fd, path = tempfile.mkstemp(prefix="st87sim-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_pem("CERTIFICATE", creds.cert) + _pem("PRIVATE KEY", creds.key))
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)


def _pem(label, der):
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


# The module walks no chain: the server's own certificate must be signed by the profile's CA
# itself, even when the server sends intermediates that would lead there.
def check_issuer(peer_der, ca_der):
    if not peer_der:
        return  # a PSK suite: no server certificate
    try:
        peer = x509.load_der_x509_certificate(peer_der)
        peer.verify_directly_issued_by(x509.load_der_x509_certificate(ca_der))
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise HandshakeError("the server certificate is not issued by the profile's CA") from None
