# A real DTLS 1.2 peer for tests: python-mbedtls (mbed TLS 2.28) on 127.0.0.1 with a free UDP
# port, served from a background thread.
#
#   with DTLSEchoServer(psk=PSK, identity="Client_identity",
#                       suite="TLS-PSK-WITH-AES-128-CCM-8") as server:
#       ... DTLS handshake with 127.0.0.1:server.port, send datagrams ...
#       hs = server.wait_handshake()
#       assert hs.ok and hs.suite == "TLS-PSK-WITH-AES-128-CCM-8" and not hs.resumed
#
# Every handshake answers the first ClientHello with a HelloVerifyRequest (cookies), then
# runs on mbed TLS's own retransmission timers. Each application datagram is sent back
# reversed, so a test sees that data went both ways and was not looped back by the emulator.
# Clients are told apart by address: several may come one after another (or at once), and a
# new ClientHello from an address whose session is over starts a new session there.
#
# What the server saw is recorded per handshake (Handshake below), from mbed TLS and from the
# handshake records on the wire: the suite, whether the session was resumed, how many
# datagrams the handshake took, what the client offered (suites, a Connection ID).
#
# NOTE: python-mbedtls 2.10 binds neither mbed TLS's session cache nor the "no client
# certificate request" mode; _MbedtlsConf reaches both through st87sim.mbedtls_link. A
# python-mbedtls client gets session resumption (save_session / resume_session), which it also
# lacks, from the emulator's own (st87sim.sessions).

import ctypes
import dataclasses
import gc
import select
import socket
import struct
import threading

from mbedtls import exceptions as mbedtls_errors
from mbedtls import pk, tls, x509

from st87sim import sessions
from st87sim.mbedtls_link import context_offsets, libraries

# DTLS record content types and handshake message types (RFC 6347, RFC 5246).
_HANDSHAKE = 22
_CLIENT_HELLO = 1
_SERVER_HELLO = 2
_HELLO_VERIFY_REQUEST = 3
# The connection_id extension: 54 in RFC 9146, 254 in the draft that mbed TLS 2.x implements.
_CID_EXTENSIONS = (54, 254)

_RECORD_HEADER = 13  # type, version, epoch, sequence number, length
_FRAGMENT_HEADER = 12  # type, length, message_seq, fragment_offset, fragment_length
_MAX_DATAGRAM = 65535
_TICK_S = 0.05  # how often handshakes in progress get a chance to retransmit

# mbed TLS error codes the server tells apart.
_PEER_CLOSE_NOTIFY = 0x7880
_VERIFY_NONE = 0  # MBEDTLS_SSL_VERIFY_NONE: the server sends no CertificateRequest


# What the server saw of one handshake. ok is False when it failed (error says why); a
# session that ended after the handshake keeps ok and gets closed.
@dataclasses.dataclass
class Handshake:
    peer: tuple
    ok: bool = False
    error: str | None = None
    suite: str | None = None  # mbed TLS's name, e.g. "TLS-PSK-WITH-AES-128-CCM-8"
    suite_code: int | None = None  # from the ServerHello on the wire, e.g. 0xC0A8
    version: str | None = None
    resumed: bool = False
    hello_verify: bool = False  # a HelloVerifyRequest (cookie exchange) came first
    datagrams: int = 0  # handshake datagrams received, cookie exchange included
    offered: tuple = dataclasses.field(default=(), repr=False)  # the ClientHello's suite codes
    client_cid: bytes | None = None  # the Connection ID the client proposed, if any
    client_session_id: bytes = dataclasses.field(default=b"", repr=False)
    server_session_id: bytes = dataclasses.field(default=b"", repr=False)
    data: list = dataclasses.field(default_factory=list)  # application datagrams received
    closed: str | None = None


class _Session:
    def __init__(self, context, addr, record, mtu):
        self.addr = addr
        self.record = record
        self.buf = context.wrap_buffers()
        # The cookie is bound to the client's transport address.
        self.buf.setcookieparam(("%s:%d" % addr).encode())
        if mtu:
            self.buf.setmtu(mtu)  # mbed TLS then fragments handshake messages to fit
        self.over = False


class DTLSEchoServer:
    # psk, identity:  a PSK (bytes) and the identity (str) it belongs to.
    # cert, key:      the server's certificate (DER) and EC private key (DER).
    # ca:             DER; with verify_client, clients must show a certificate it issued.
    #                 Without verify_client the server asks for no client certificate.
    # suite:          one mbed TLS suite name to allow (default: mbed TLS's whole list).
    # mtu:            pack the server's flights into datagrams of at most this size.
    # timeout:        mbed TLS's handshake retransmission timeout, (min, max) seconds.
    # resumption:     keep a session cache, so that a client can resume a session.
    def __init__(
        self,
        *,
        psk=None,
        identity=None,
        cert=None,
        key=None,
        ca=None,
        verify_client=False,
        suite=None,
        mtu=None,
        timeout=(1.0, 20.0),
        resumption=True,
    ):
        if (psk is None) != (identity is None):
            raise ValueError("a PSK needs its identity")
        if (cert is None) != (key is None):
            raise ValueError("a certificate needs its private key")
        if psk is None and cert is None:
            raise ValueError("give a PSK, a certificate, or both")
        if verify_client and ca is None:
            raise ValueError("verify_client needs the CA that issued the client certificates")
        if suite is not None and suite not in tls.ciphers_available():
            raise ValueError(f"{suite}: not a suite this mbed TLS has")
        config = {
            "lowest_supported_version": tls.DTLSVersion.DTLSv1_2,
            "highest_supported_version": tls.DTLSVersion.DTLSv1_2,
            "handshake_timeout_min": timeout[0],
            "handshake_timeout_max": timeout[1],
            "validate_certificates": bool(verify_client),
        }
        if psk is not None:
            config["pre_shared_key_store"] = {identity: bytes(psk)}
        if cert is not None:
            config["certificate_chain"] = ((x509.CRT.from_DER(cert),), pk.ECC.from_DER(key))
        if verify_client:
            config["trust_store"] = tls.TrustStore([x509.CRT.from_DER(ca)])
        if suite is not None:
            config["ciphers"] = (suite,)
        self.suite = suite
        self.mtu = mtu
        self._context = tls.ServerContext(tls.DTLSConfiguration(**config))
        self._conf = _MbedtlsConf(self._context)
        if not verify_client:
            # python-mbedtls maps "do not validate" to VERIFY_OPTIONAL, which still sends a
            # CertificateRequest; a server that does not check clients does not ask.
            self._conf.authmode(_VERIFY_NONE)
        self._cache = self._conf.session_cache() if resumption else None

        self.port = None
        self.handshakes = []  # Handshake, in the order they ended
        self._sock = None
        self._sessions = {}  # address -> _Session
        self._cookies = {}  # address -> datagrams answered with a HelloVerifyRequest
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = None
        self.error = None  # an exception that stopped the server thread

    # Servers for the test PKI (tests_host/pki.py): the certificate `name` and its key.
    @classmethod
    def for_pki(cls, pki, name="server", **kw):
        kw.setdefault("ca", pki.der("ca"))
        return cls(cert=pki.der(name), key=pki.key_der(name), **kw)

    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name="dtls-echo", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        running = False
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            running = self._thread.is_alive()
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        # Nothing uses the cache once the thread is gone (a thread that is somehow still
        # running keeps it: a leak, not a crash).
        if not running:
            self._sessions.clear()
            if self._cache is not None:
                self._cache.free()
                self._cache = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # The n-th handshake that ended (0 = the first), once it has; raises TimeoutError.
    def wait_handshake(self, index=-1, timeout=10):
        want = index + 1 if index >= 0 else max(len(self.handshakes), 1)
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.handshakes) >= want, timeout):
                raise TimeoutError(f"no DTLS handshake ended within {timeout} s")
            return self.handshakes[index]

    # --- the server thread ---

    def _run(self):
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._sock], [], [], _TICK_S)
                if ready:
                    data, addr = self._sock.recvfrom(_MAX_DATAGRAM)
                    self._datagram(data, addr)
                # mbed TLS retransmits a flight only when it is called after its timer ran
                # out: give every handshake in progress that call.
                for session in list(self._sessions.values()):
                    if not session.over:
                        self._drive(session)
        except Exception as exc:  # a bug here must show in the test, not hang it
            self.error = exc
            raise

    def _datagram(self, data, addr):
        session = self._sessions.get(addr)
        hello = _client_hello(data)
        if session is not None and session.over and hello is not None:
            # The address starts over (a client reconnecting from the same port).
            self._end(session, "replaced by a new ClientHello")
            session = None
        if session is None:
            if hello is None:
                return  # stray records of a session that is gone
            carried = self._cookies.pop(addr, 0)
            record = Handshake(peer=addr, hello_verify=bool(carried), datagrams=carried)
            session = self._sessions[addr] = _Session(self._context, addr, record, self.mtu)
        if session.over:
            self._application(session, data)
            return
        session.record.datagrams += 1
        if hello is not None:
            _note_client_hello(session.record, hello)
        session.buf.receive_from_network(data)
        self._drive(session)

    # Run the handshake as far as the input allows.
    def _drive(self, session):
        buf = session.buf
        try:
            while buf._handshake_state is not tls.HandshakeStep.HANDSHAKE_OVER:
                try:
                    buf.do_handshake()
                except tls.WantWriteError:
                    pass
                except tls.WantReadError:
                    break
                finally:
                    self._flush(session)
                if buf._handshake_state is tls.HandshakeStep.SERVER_HELLO_VERIFY_REQUEST_SENT:
                    raise tls.HelloVerifyRequest()
        except tls.HelloVerifyRequest:
            # The cookie went out; the server keeps no state until the client shows it.
            self._flush(session)
            del self._sessions[session.addr]
            self._cookies[session.addr] = session.record.datagrams
            return
        except mbedtls_errors.TLSError as exc:
            self._flush(session)  # the alert, if mbed TLS made one
            session.record.error = str(exc)
            self._end(session, None)
            return
        if buf._handshake_state is tls.HandshakeStep.HANDSHAKE_OVER and not session.over:
            session.over = True
            record = session.record
            record.ok = True
            record.suite = buf.cipher()
            record.version = buf.negotiated_tls_version().name
            # RFC 5246 7.4.1.3: a server that resumes echoes the client's session id.
            record.resumed = bool(record.client_session_id) and (
                record.client_session_id == record.server_session_id
            )
            self._publish(record)

    def _application(self, session, data):
        buf = session.buf
        buf.receive_from_network(data)
        while True:
            try:
                chunk = buf.read(_MAX_DATAGRAM)
            except tls.WantReadError:
                break
            except mbedtls_errors.TLSError as exc:
                closed = "close_notify" if exc.err == _PEER_CLOSE_NOTIFY else str(exc)
                if exc.err == _PEER_CLOSE_NOTIFY:
                    try:
                        buf.shutdown()  # answer with ours
                    except mbedtls_errors.TLSError:
                        pass
                self._flush(session)
                self._end(session, closed)
                return
            if not chunk:
                break  # NOTE: python-mbedtls returns b"" once the records are consumed
            with self._cond:
                session.record.data.append(chunk)
            buf.write(chunk[::-1])
        self._flush(session)

    # Send what mbed TLS produced; note the ServerHello of the handshake on the way.
    def _flush(self, session):
        out = b""
        while True:
            chunk = session.buf.peek_outgoing(_MAX_DATAGRAM)
            if not chunk:
                break
            out += chunk
            session.buf.consume_outgoing(len(chunk))
        if not out:
            return
        if not session.over:
            _note_server_flight(session.record, out)
        for datagram in _datagrams(out, self.mtu):
            self._sock.sendto(datagram, session.addr)

    def _end(self, session, closed):
        if self._sessions.get(session.addr) is session:
            del self._sessions[session.addr]
        with self._cond:
            session.record.closed = closed
        if not session.over:
            session.over = True
            self._publish(session.record)

    def _publish(self, record):
        with self._cond:
            self.handshakes.append(record)
            self._cond.notify_all()


# --- the handshake on the wire (plaintext records of epoch 0) ---


# (type, epoch, fragment) per record of a datagram.
def _records(data):
    i = 0
    while i + _RECORD_HEADER <= len(data):
        ctype = data[i]
        epoch = int.from_bytes(data[i + 3 : i + 5], "big")
        n = int.from_bytes(data[i + 11 : i + 13], "big")
        yield ctype, epoch, data[i + _RECORD_HEADER : i + _RECORD_HEADER + n]
        i += _RECORD_HEADER + n


# (msg_type, body) per whole handshake message in plaintext records; fragments of a larger
# message are skipped (the hellos this looks at always fit one).
def _messages(data):
    for ctype, epoch, frag in _records(data):
        if ctype != _HANDSHAKE or epoch != 0:
            continue
        i = 0
        while i + _FRAGMENT_HEADER <= len(frag):
            length = int.from_bytes(frag[i + 1 : i + 4], "big")
            offset = int.from_bytes(frag[i + 6 : i + 9], "big")
            n = int.from_bytes(frag[i + 9 : i + 12], "big")
            body = frag[i + _FRAGMENT_HEADER : i + _FRAGMENT_HEADER + n]
            if offset == 0 and n == length:
                yield frag[i], body
            i += _FRAGMENT_HEADER + n


def _client_hello(data):
    for msg_type, body in _messages(data):
        if msg_type == _CLIENT_HELLO:
            return body
    return None


# ClientHello: version, random, session_id, cookie, cipher_suites, compression, extensions.
def _note_client_hello(record, body):
    try:
        i = 34
        record.client_session_id = body[i + 1 : i + 1 + body[i]]
        i += 1 + body[i]
        i += 1 + body[i]  # the cookie
        n = int.from_bytes(body[i : i + 2], "big")
        record.offered = struct.unpack(">%dH" % (n // 2), body[i + 2 : i + 2 + n])
        i += 2 + n
        i += 1 + body[i]  # compression methods
        for ext, value in _extensions(body[i + 2 : i + 2 + int.from_bytes(body[i : i + 2])]):
            if ext in _CID_EXTENSIONS and value:
                record.client_cid = value[1 : 1 + value[0]]
    except (IndexError, struct.error):
        pass  # a malformed hello is mbed TLS's to refuse; the record just stays short


def _extensions(data):
    i = 0
    while i + 4 <= len(data):
        ext = int.from_bytes(data[i : i + 2], "big")
        n = int.from_bytes(data[i + 2 : i + 4], "big")
        yield ext, data[i + 4 : i + 4 + n]
        i += 4 + n


# ServerHello: version, random, session_id, cipher_suite, ...
def _note_server_flight(record, data):
    for msg_type, body in _messages(data):
        if msg_type == _SERVER_HELLO and len(body) > 34:
            n = body[34]
            record.server_session_id = body[35 : 35 + n]
            record.suite_code = int.from_bytes(body[35 + n : 37 + n], "big")


# Whole records packed into datagrams of at most mtu bytes (one datagram without an mtu).
def _datagrams(data, mtu):
    if not mtu:
        return [data]
    out, cur, i = [], b"", 0
    while i + _RECORD_HEADER <= len(data):
        n = _RECORD_HEADER + int.from_bytes(data[i + 11 : i + 13], "big")
        if cur and len(cur) + n > mtu:
            out.append(cur)
            cur = b""
        cur += data[i : i + n]
        i += n
    return out + [cur] if cur else out


# --- what python-mbedtls does not bind ---


_P = ctypes.c_void_p
# More than mbed TLS 2.28's sizeof() of each structure; only mbed TLS touches their insides.
_SCRATCH = 4096


# The mbedtls_ssl_config inside a python-mbedtls context, and the ssl context inside a
# buffer. The configuration lives in a python-mbedtls object the context refers to; its
# address is found by a signature (the random generator python-mbedtls configures, at the
# offset mbed TLS itself writes it to, as learnt on a scratch configuration), read only
# inside that object's own memory. Every call after that goes through mbed TLS's API.
class _MbedtlsConf:
    def __init__(self, context):
        self.ssl, self.crypto = libraries()
        for name, args in (
            ("mbedtls_ssl_config_init", [_P]),
            ("mbedtls_ssl_conf_rng", [_P, _P, _P]),
            ("mbedtls_ssl_conf_authmode", [_P, ctypes.c_int]),
            ("mbedtls_ssl_conf_session_cache", [_P, _P, _P, _P]),
            ("mbedtls_ssl_cache_init", [_P]),
            ("mbedtls_ssl_cache_free", [_P]),
        ):
            getattr(self.ssl, name).argtypes = args
        self.context = context
        self.address = self._find(context)
        # Cross-check: the mbed TLS context of a buffer points at exactly this configuration.
        if isinstance(context, tls.ServerContext):
            self.ssl_context(context.wrap_buffers())
        else:
            self.ssl_context(context.wrap_buffers(None))

    def _addr(self, lib, name):
        return ctypes.cast(getattr(lib, name), _P).value

    def _find(self, context):
        scratch = ctypes.create_string_buffer(_SCRATCH)
        self.ssl.mbedtls_ssl_config_init(scratch)
        blank = scratch.raw
        self.ssl.mbedtls_ssl_conf_rng(scratch, 0x5EED0001, 0x5EED0002)
        f_rng = _offset_of(blank, scratch.raw, 0x5EED0001)
        rng = self._addr(self.crypto, "mbedtls_ctr_drbg_random")
        # The objects the context holds (its class aside): python-mbedtls 2.10 has one, the
        # MbedTLSConfiguration. Reading an object's fixed-size part is always safe.
        holders = [o for o in gc.get_referents(context) if not isinstance(o, type)]
        hits = []
        for holder in holders:
            size = type(holder).__basicsize__
            raw = ctypes.string_at(id(holder), size)
            for k in range(0, size - f_rng - 8 + 1, 8):
                if struct.unpack_from("<Q", raw, k + f_rng)[0] == rng:
                    hits.append(id(holder) + k)
        if len(set(hits)) != 1:
            raise RuntimeError(
                "cannot find mbed TLS's configuration in this python-mbedtls "
                "(the bridge knows python-mbedtls 2.10 on mbed TLS 2.28)"
            )
        return hits[0]

    def authmode(self, mode):
        self.ssl.mbedtls_ssl_conf_authmode(self.address, mode)

    def session_cache(self):
        cache = _Cache(self.ssl)
        self.ssl.mbedtls_ssl_conf_session_cache(
            self.address,
            cache.address,
            self._addr(self.ssl, "mbedtls_ssl_cache_get"),
            self._addr(self.ssl, "mbedtls_ssl_cache_set"),
        )
        return cache

    # The mbedtls_ssl_context of a buffer of this context: mbed TLS 2.28's struct starts with
    # its configuration pointer, which points at ours, and the int handshake state, which
    # python-mbedtls shows.
    def ssl_context(self, buffer):
        hits = context_offsets(buffer, lambda ptr: ptr == self.address)
        if len(hits) != 1:
            raise RuntimeError("cannot find the mbed TLS context of this buffer")
        return id(buffer) + hits[0]


def _offset_of(before, after, value):
    for k in range(0, len(after) - 7, 8):
        if (
            before[k : k + 8] != after[k : k + 8]
            and struct.unpack_from("<Q", after, k)[0] == value
        ):
            return k
    raise RuntimeError("mbed TLS did not write where expected")


class _Cache:
    def __init__(self, lib):
        self._lib = lib
        self._mem = ctypes.create_string_buffer(_SCRATCH)
        self.address = ctypes.addressof(self._mem)
        lib.mbedtls_ssl_cache_init(self.address)

    def free(self):
        if self._mem is not None:
            self._lib.mbedtls_ssl_cache_free(self.address)
            self._mem = None


# Client-side resumption for a python-mbedtls client: save_session(buffer) after the
# handshake gives the session (bytes, it holds the master secret: tests only), and
# resume_session(new_buffer, session) offers it before the next handshake.
def save_session(buffer):
    session = sessions.save(buffer)
    if session is None:
        raise RuntimeError("mbed TLS has no session to save (handshake not over?)")
    return session


def resume_session(buffer, session):
    if buffer._handshake_state is not tls.HandshakeStep.HELLO_REQUEST:
        raise RuntimeError("resume_session() must come before the handshake")
    if not sessions.offer(buffer, session):
        raise RuntimeError("mbed TLS refused the session")
