# The emulated module's view of the network: a loopback-only policy with explicit routes and
# a local DNS table, and TCP connections and UDP sockets with a reader thread each.
#
# Safety: nothing here ever resolves a name through the host's resolver or connects to an
# address outside 127.0.0.0/8 and ::1. An AT command naming anything else (the application
# note uses 192.168.21.4) is refused unless a route maps it onto a loopback address.

import ipaddress
import logging
import socket
import threading

from . import dtls, engine

log = logging.getLogger("st87sim.net")

_RECV_CHUNK = 16384


class Refused(Exception):
    pass


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ip_literal(host):
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


# "host:port", "[v6]:port" or a (host, port) tuple -> (host, int port).
def parse_hostport(spec):
    if not isinstance(spec, str):
        host, port = spec
        return str(host), int(port)
    if spec.startswith("["):
        host, sep, port = spec[1:].partition("]:")
    else:
        host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{spec!r}: expected HOST:PORT")
    return host, int(port)


class NetPolicy:
    # routes: {"192.168.21.4:4433": ("127.0.0.1", 5555)} (keys and values may also be
    # tuples or "HOST:PORT" strings; a key may be a name). dns: {"name": "127.0.0.1"}.
    def __init__(self, routes=None, dns=None):
        self.routes = {}
        for key, target in (routes or {}).items():
            host, port = parse_hostport(key)
            to_host, to_port = parse_hostport(target)
            if not is_loopback(to_host):
                raise ValueError(
                    f"route {host}:{port}: target {to_host} is not a loopback address"
                )
            self.routes[(self._key(host), port)] = (ip_literal(to_host), to_port)
        self.dns = {}
        for name, ip in (dns or {}).items():
            if ip_literal(ip) is None:
                raise ValueError(f"DNS entry {name!r}: {ip!r} is not an IP address")
            self.dns[name.lower()] = ip_literal(ip)

    @staticmethod
    def _key(host):
        return ip_literal(host) or host.lower()

    # AT#DNS answers only when a table was configured (the model of a saved DNS server).
    def has_dns(self):
        return bool(self.dns)

    # Name -> IP from the table; "localhost" always resolves.
    def lookup(self, name):
        name = name.lower()
        if name in self.dns:
            return self.dns[name]
        if name == "localhost":
            return "127.0.0.1"
        return None

    # Where a connection to host:port really goes, or Refused with the reason.
    def target(self, host, port):
        routed = self.routes.get((self._key(host), port))
        if routed:
            return routed
        ip = ip_literal(host) or self.lookup(host)
        if ip is None:
            raise Refused(f"{host}: not an address and not in the DNS table")
        routed = self.routes.get((ip, port))
        if routed:
            return routed
        if not is_loopback(ip):
            raise Refused(f"{host} ({ip}) is not loopback and no route maps {ip}:{port}")
        return ip, port


# What TCP and UDP connections share: a link, a reader thread running self._read_loop, and
# the closing flag that silences it.
class _ReaderConnection:
    def __init__(self, link, on_closed, thread_name):
        self.link = link
        self._on_closed = on_closed
        self._closing = False
        self._thread = threading.Thread(target=self._read_loop, name=thread_name, daemon=True)

    # Set the closing flag and shut the link down; False when closing had begun already.
    def _begin_close(self):
        if self._closing:
            return False
        self._closing = True
        self.link.shutdown()
        return True

    # This connection, its reader started.
    def _started(self):
        self._thread.start()
        return self

    def _join_reader(self):
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)


# A TCP connection to a loopback peer. The reader thread hands each received chunk of
# application data to on_data(bytes), and the end of the stream to on_closed(reason); both
# run on the reader thread.
class Connection(_ReaderConnection):
    def __init__(self, sock, link, on_data, on_closed):
        super().__init__(link, on_closed, "st87sim-sock")
        self.sock = sock
        self._on_data = on_data

    # Connect to ip:port (already mapped by NetPolicy.target) and, with credentials, run the
    # TLS handshake (the engine may connect twice: TLS 1.3 first, then 1.2), offering
    # `session` and filling in new_record(protocol) for each attempt. Raises OSError or
    # engine.HandshakeError.
    @classmethod
    def open(
        cls,
        ip,
        port,
        *,
        creds,
        server_name,
        timeout_s,
        on_data,
        on_closed,
        session=None,
        new_record=None,
    ):
        _check_loopback(ip)

        def connect():
            sock = socket.create_connection((ip, port), timeout=timeout_s)
            sock.settimeout(None)
            return sock

        if creds is not None:
            link = engine.tls_connect(
                connect, creds, server_name, timeout_s, session=session, new_record=new_record
            )
        else:
            link = engine.PlainLink(connect())
        return cls(link.sock, link, on_data, on_closed)._started()

    def send(self, data):
        self.link.send(data)

    def close(self):
        if not self._begin_close():
            return
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._join_reader()
        self.sock.close()

    def _read_loop(self):
        reason = "peer closed"
        try:
            while True:
                raw = self.sock.recv(_RECV_CHUNK)
                if not raw:
                    break
                data = self.link.decode(raw)
                if data and not self._closing:
                    self._on_data(data)
        except engine.LinkClosed as exc:
            reason = f"TLS: {exc}"
        except OSError as exc:
            reason = f"socket error: {exc}"
        if not self._closing:
            self._on_closed(reason)


# The policy refuses non-loopback targets already; this check stays at the sockets so that no
# caller can ever get a non-loopback connection or datagram out of this module.
def _check_loopback(ip):
    if not is_loopback(ip):
        raise Refused(f"{ip} is not loopback")


# A UDP socket: plain (datagrams to any loopback address, from anyone) or a DTLS session with
# one peer. The reader thread hands each received frame (one datagram; for DTLS one record)
# to on_frame(bytes), and the end of a DTLS session to on_closed(reason); both run on the
# reader thread. Datagrams go through the loss injection both ways.
class DatagramConnection(_ReaderConnection):
    _POLL_S = 0.1  # how often the reader looks at the closing flag

    def __init__(self, port, link, on_frame, on_closed):
        super().__init__(link, on_closed, "st87sim-udp")
        self.port = port
        self._on_frame = on_frame

    @classmethod
    def open_plain(cls, *, loss, on_frame, on_closed):
        port = dtls.DatagramPort(loss)
        return cls(port, dtls.PlainDatagramLink(port), on_frame, on_closed)._started()

    # Run the DTLS handshake with ip:port (already mapped by NetPolicy.target); see
    # dtls.dtls_connect for the rest. Raises engine.HandshakeError.
    @classmethod
    def open_dtls(
        cls,
        ip,
        port,
        *,
        creds,
        server_name,
        timeout_s,
        loss,
        on_frame,
        on_closed,
        record,
        session=None,
        cid=None,
        timeouts_ms=None,
    ):
        _check_loopback(ip)
        udp = dtls.DatagramPort(loss, remote=(ip, port))
        try:
            link = dtls.dtls_connect(
                udp,
                creds,
                server_name,
                timeout_s,
                record=record,
                session=session,
                cid=cid,
                timeouts_ms=timeouts_ms,
            )
        except BaseException:
            udp.close()
            raise
        return cls(udp, link, on_frame, on_closed)._started()

    # One datagram; addr (already mapped and checked) for a plain socket, None for DTLS.
    def send(self, data, addr=None):
        if addr is not None:
            _check_loopback(addr[0])
        self.link.send(data, addr)

    def close(self):
        if not self._begin_close():
            return
        self._join_reader()
        self.port.close()

    def _read_loop(self):
        reason = None
        try:
            for frame in getattr(self.link, "early", ()):
                self._on_frame(frame)
            while not self._closing:
                got = self.port.recv(self._POLL_S)
                if got is None:
                    continue
                for frame in self.link.decode(got[0]):
                    if not self._closing:
                        self._on_frame(frame)
        except engine.LinkClosed as exc:
            reason = f"DTLS: {exc}"
        except OSError as exc:
            reason = f"socket error: {exc}"
        if reason is not None and not self._closing:
            self._on_closed(reason)
