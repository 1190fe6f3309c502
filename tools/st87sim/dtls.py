# The emulated module's datagram side: UDP ports with fault injection (datagram loss), plain
# UDP links, and the DTLS 1.2 client (python-mbedtls DTLSConfiguration, mbed TLS 2.28) with the
# profile's credentials, session resumption and retransmission under loss.
#
# One application send is one datagram, and each datagram (for DTLS: each record) that comes
# in is one frame for AT#IPREAD, so message boundaries survive end to end.
#
# NOTE: Connection ID (RFC 9146) cannot be negotiated. mbed TLS 2.28 has it only behind the
# experimental MBEDTLS_SSL_DTLS_CONNECTION_ID option; the libmbedtls that python-mbedtls
# 2.10.1 bundles is built without it (it exports no mbedtls_ssl_set_cid/mbedtls_ssl_conf_cid
# and holds no CID code), and python-mbedtls has no API for it either. So the ClientHello
# carries no connection_id extension, the CID the host proposed is only recorded, and
# AT#DTLSCONNECT? reports it as not negotiated. OpenSSL 3.0 (the other DTLS peer the tests
# use) has no RFC 9146 support at all.

import logging
import random
import select
import socket
import threading
import time

from mbedtls import exceptions as _mbedtls_errors
from mbedtls import tls as _tls

from . import engine, sessions
from .handshake import Tally

log = logging.getLogger("st87sim.engine")

# DTLS handshake retransmission timer (RFC 6347 4.2.4.1): the first wait, doubled after every
# retransmission up to the second; past it the handshake fails.
# NOTE [model]: mbed TLS defaults to 1 s .. 60 s, the right order for NB-IoT round trips. The
# emulator talks to loopback peers, so it waits 100 ms .. 2 s, which keeps tests under loss
# fast and still leaves five retransmissions of each flight.
HANDSHAKE_TIMEOUT_MS = (100, 2000)

# How long the handshake loop waits for a datagram before it lets mbed TLS look at its
# retransmission timer again; a small fraction of the shortest timer.
_POLL_S = 0.01

_MAX_DATAGRAM = 65535
_READ_CHUNK = 16384


# Fault injection: each datagram between the emulator and a peer is lost with probability
# `rate`, independently per direction. With a seed each direction draws from its own seeded
# generator, so the n-th datagram out (or in) meets the same fate on every run whatever the
# interleaving of the two directions.
class Loss:
    def __init__(self, rate=0.0, seed=None):
        self.rate = rate
        self._lock = threading.Lock()
        self._rng = {
            way: random.Random(None if seed is None else f"{seed}/{way}") for way in ("out", "in")
        }

    def drop(self, way):
        with self._lock:
            draw = self._rng[way].random()  # drawn even at rate 0, to keep the sequence
        return draw < self.rate


# A UDP socket on 127.0.0.1 that goes through the loss injection both ways. A Tally, when
# set, sees every datagram (for the handshake).
class DatagramPort:
    def __init__(self, loss, remote=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        if remote is not None:
            # Connected: the kernel drops datagrams from anyone but the peer.
            self.sock.connect(remote)
        self.remote = remote
        self.loss = loss
        self.tally = None

    def send(self, data, addr=None):
        if self.tally is not None:
            self.tally.sent(data)
        if self.loss.drop("out"):
            if self.tally is not None:
                self.tally.dropped()
            log.debug("loss injection: %d bytes out dropped", len(data))
            return
        if addr is None:
            self.sock.send(data)
        else:
            self.sock.sendto(data, addr)

    # One datagram within timeout_s: (data, addr), or None for nothing or a lost one.
    def recv(self, timeout_s):
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        if not ready:
            return None
        try:
            data, addr = self.sock.recvfrom(_MAX_DATAGRAM)
        except ConnectionRefusedError:
            # NOTE: an ICMP port unreachable for an earlier datagram surfaces on the next
            # receive of a connected UDP socket. UDP has no connection to lose: ignore it.
            return None
        if self.loss.drop("in"):
            if self.tally is not None:
                self.tally.dropped()
            log.debug("loss injection: %d bytes in dropped", len(data))
            return None
        if self.tally is not None:
            self.tally.received(data)
        return data, addr

    def close(self):
        self.sock.close()


# A plain UDP socket: datagrams out to any (already checked) address, in from anyone.
class PlainDatagramLink:
    def __init__(self, port):
        self.port = port

    def send(self, data, addr):
        self.port.send(data, addr)

    # One datagram in, the frames it makes.
    def decode(self, data):
        return [data]

    def shutdown(self):
        pass

    def describe(self):
        return "plain UDP"


# A DTLS 1.2 session on python-mbedtls buffers, one record per datagram out.
class DtlsLink(engine.MbedtlsLink):
    def __init__(self, port, buf):
        self.port = port
        self._buf = buf
        self.session = None  # the session to keep for resumption, if any
        self.early = []  # frames decrypted during the handshake, for the reader to deliver
        # Reader thread and AT thread share the context; see engine.TlsLink.
        self._lock = threading.Lock()

    def send(self, data, addr=None):
        with self._lock:
            self._buf.write(data)
            self._flush()

    def decode(self, data):
        frames = []
        with self._lock:
            self._buf.receive_from_network(data)
            frames = self._read_records()
            # A record may have been a retransmission of the server's last flight: mbed TLS
            # answers it by resending ours.
            self._flush()
        return frames

    # What mbed TLS has decrypted, one record's plaintext per frame. readinto, not read:
    # read() stops as soon as the input buffer is empty, even with records still inside mbed
    # TLS, and would join records that came in one datagram.
    def _read_records(self):
        frames = []
        room = bytearray(_READ_CHUNK)
        while True:
            try:
                n = self._buf.readinto(room, len(room))
            except (_tls.WantReadError, _tls.WantWriteError):
                return frames
            except _tls.RaggedEOF:
                continue  # an empty application record
            except _mbedtls_errors.TLSError as exc:
                raise engine.mbedtls_closed(exc) from None
            frames.append(bytes(room[:n]))

    # Everything mbed TLS wrote since the last flush, as one datagram. It writes a whole
    # flight or one record at a time, and with no MTU set a flight fits one datagram.
    def _flush(self):
        pending = self._buf.peek_outgoing(_MAX_DATAGRAM)
        if pending:
            self._buf.consume_outgoing(len(pending))
            self.port.send(pending)


# Run the DTLS 1.2 client handshake over `port` (connected to the peer) with a profile's
# credentials. session: one kept from an earlier handshake, offered for resumption. cid: the
# Connection ID the host proposed (recorded only, see the NOTE above). Fills in `record` (a
# Handshake) and returns a DtlsLink; raises engine.HandshakeError with a reason that holds no
# secret.
def dtls_connect(
    port, creds, server_name, timeout_s, *, record, session=None, cid=None, timeouts_ms=None
):
    record.cid_proposed = cid
    tally = Tally(record, datagram=True)
    try:
        link = _handshake(
            port,
            creds,
            server_name,
            timeout_s,
            session,
            tally,
            timeouts_ms or HANDSHAKE_TIMEOUT_MS,
        )
    except engine.HandshakeError as exc:
        tally.finish(False, str(exc))
        raise
    record.cipher = link._buf.cipher()
    tally.finish(True)
    return link


def _handshake(port, creds, server_name, timeout_s, session, tally, timeouts_ms):
    if not creds.has_psk() and not creds.has_certs():
        raise engine.HandshakeError("the security profile holds no usable credentials")
    options = engine.mbedtls_options(creds)
    config = _tls.DTLSConfiguration(
        lowest_supported_version=_tls.DTLSVersion.DTLSv1_2,
        highest_supported_version=_tls.DTLSVersion.DTLSv1_2,
        handshake_timeout_min=timeouts_ms[0] / 1000,
        handshake_timeout_max=timeouts_ms[1] / 1000,
        **options,
    )
    buf = _tls.ClientContext(config).wrap_buffers(server_name)
    if session is not None:
        tally.record.offered_session = sessions.offer(buf, session)
    link = DtlsLink(port, buf)
    deadline = time.monotonic() + timeout_s
    port.tally = tally
    # mbed TLS resends a flight only from within a handshake step, when its timer has run out:
    # so the loop keeps stepping while it waits, and a step that writes after a wait that
    # brought nothing is a retransmission.
    idle = False
    try:
        while buf._handshake_state is not _tls.HandshakeStep.HANDSHAKE_OVER:
            waiting = False
            try:
                buf.do_handshake()
            except _tls.WantReadError:
                waiting = True
            except _tls.WantWriteError:
                pass
            if buf.peek_outgoing(1):
                if idle:
                    tally.retransmitted()
                link._flush()
            if not waiting:
                continue  # a step that did no I/O; the next one may
            if time.monotonic() > deadline:
                raise engine.HandshakeError(f"DTLS 1.2: no handshake within {timeout_s} s")
            got = port.recv(_POLL_S)
            if got is not None:
                buf.receive_from_network(got[0])
            idle = got is None
    except _mbedtls_errors.TLSError as exc:
        # Retransmissions used up come here too (MBEDTLS_ERR_SSL_TIMEOUT, 0x6800).
        raise engine.HandshakeError(f"DTLS 1.2: {exc}") from None
    except OSError as exc:
        raise engine.HandshakeError(f"socket error during the DTLS handshake: {exc}") from None
    finally:
        port.tally = None
    if creds.ca:
        engine.check_issuer(buf.getpeercert(binary_form=True), creds.ca)
    link.session = sessions.save(buf)
    # Records that came with the last handshake datagram.
    link.early = link._read_records()
    return link
