# The emulated module's TLS engine: a real TLS 1.2 client (python-mbedtls, sans-IO buffers)
# on top of an already connected TCP socket, plus a plain pass-through link with the same
# shape, so that the socket layer does not care which one it holds.

import dataclasses
import socket
import threading

from mbedtls import exceptions as _mbedtls_errors
from mbedtls import tls as _tls

# PROTOCOL.md 4.6: the TLS 1.2 suites with a PSK key exchange, in the note's order. The
# module offers every suite its credentials allow; we offer those mbedtls was built with.
_NOTE_PSK_SUITES = (
    "TLS-PSK-WITH-AES-128-GCM-SHA256",
    "TLS-PSK-WITH-AES-128-CBC-SHA256",
    "TLS-PSK-WITH-AES-128-CCM-8",
    "TLS-PSK-WITH-AES-128-CCM",
    "TLS-PSK-WITH-AES-256-CCM",
    "TLS-PSK-WITH-AES-256-CCM-8",
    "TLS-ECDHE-PSK-WITH-AES-128-CBC-SHA256",
)
PSK_SUITES = tuple(s for s in _NOTE_PSK_SUITES if s in _tls.ciphers_available())

# TLS records carry at most 16 KiB of plaintext; read in pieces of that size.
_READ_CHUNK = 16384


# What a security profile gives the engine for one handshake.
@dataclasses.dataclass(frozen=True)
class Credentials:
    psk: bytes | None = dataclasses.field(default=None, repr=False)
    identity: bytes | None = None
    # TODO: CA root (server authentication), client certificate and EC private key for the
    # ECDHE-ECDSA suites; TLS 1.3 (Python's ssl) when a CA is present; DTLS 1.2 with an
    # optional Connection ID (python-mbedtls DTLSConfiguration); session resumption.

    def usable(self):
        return bool(self.psk and self.identity)


class HandshakeError(Exception):
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


class TlsLink:
    def __init__(self, sock, buffer):
        self.sock = sock
        self._buf = buffer
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
        out = []
        with self._lock:
            self._buf.receive_from_network(raw)
            while True:
                try:
                    chunk = self._buf.read(_READ_CHUNK)
                except (_tls.WantReadError, _tls.WantWriteError):
                    break
                except _mbedtls_errors.TLSError as exc:
                    # close_notify comes here too (0x7880), as do fatal alerts.
                    raise LinkClosed(str(exc)) from None
                if not chunk:
                    break  # NOTE: python-mbedtls returns b"" once the records are consumed
                out.append(chunk)
            self._flush()
        return b"".join(out)

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

    def _flush(self):
        while True:
            pending = self._buf.peek_outgoing(_READ_CHUNK)
            if not pending:
                return
            self.sock.sendall(pending)
            self._buf.consume_outgoing(len(pending))


# Run a TLS 1.2 client handshake on the connected `sock`. server_name is sent as SNI (None
# for an IP literal). Raises HandshakeError with a reason that holds no secret.
def tls_client(sock, creds, server_name, timeout_s):
    if not creds.usable():
        # TODO: certificate-only profiles (CA and/or client certificate) once they exist.
        raise HandshakeError("the security profile holds no PSK and identity")
    try:
        identity = creds.identity.decode("utf-8")
    except UnicodeDecodeError:
        # NOTE: python-mbedtls takes the identity as text; a binary identity cannot be sent.
        raise HandshakeError("the PSK identity is not UTF-8 text") from None

    sock.settimeout(timeout_s)
    try:
        config = _tls.TLSConfiguration(
            validate_certificates=False,  # TODO: verify the server against the profile's CA
            ciphers=PSK_SUITES,
            lowest_supported_version=_tls.TLSVersion.TLSv1_2,
            highest_supported_version=_tls.TLSVersion.TLSv1_2,
            pre_shared_key=(identity, creds.psk),
        )
        buf = _tls.ClientContext(config).wrap_buffers(server_name)
        link = TlsLink(sock, buf)
        while buf._handshake_state is not _tls.HandshakeStep.HANDSHAKE_OVER:
            try:
                buf.do_handshake()
            except _tls.WantReadError:
                link._flush()
                raw = sock.recv(_READ_CHUNK)
                if not raw:
                    raise HandshakeError("the peer closed the connection during the handshake")
                buf.receive_from_network(raw)
            except _tls.WantWriteError:
                link._flush()
        link._flush()
    except socket.timeout:
        raise HandshakeError(f"no handshake progress within {timeout_s} s") from None
    except _mbedtls_errors.TLSError as exc:
        raise HandshakeError(str(exc)) from None
    except OSError as exc:
        raise HandshakeError(f"socket error during the handshake: {exc}") from None
    finally:
        sock.settimeout(None)
    return link
