# st87: secure sockets on the module's IP stack (context 5).
# MIT license; Copyright (c) 2026 st87 developers

# The module does the TCP/UDP and the TLS/DTLS; the host sees a socket id. Lifecycle:
#   CLOSED -> CREATED -> CONNECTING -> CONNECTED -> CLOSING -> CLOSED
# and FAILED when the peer closes (#SOCKETCLOSED) or the module reboots. Every way out of
# CONNECTING or CONNECTED frees the module's socket (AT#SOCKETCLOSE), so ids never leak.
#
# Receiving: the module announces each received frame with "#IPRECV: 5,<sock>"; one
# AT#IPREAD returns one frame, length-framed, which is copied straight into the caller's
# buffer. Bytes beyond the caller's buffer wait in a spill buffer for the next read (the
# modem lends one, made at start-up). A UDP frame is one datagram, only ever handed over whole.

try:
    from micropython import const
except ImportError:  # CPython
    from .at import const

from .at import field_int, ticks_add, ticks_diff, ticks_ms
from .errors import ATError, ATTimeout, ModemError

TCP = const(0)
UDP = const(1)

CLOSED = const(0)
CREATED = const(1)
CONNECTING = const(2)
CONNECTED = const(3)
CLOSING = const(4)
FAILED = const(5)

_SEND_MAX = const(1400)  # bytes per AT#IPSENDTCP/AT#IPSENDUDP (PROTOCOL.md section 5)
FRAME_MAX = const(1500)  # the largest frame one AT#IPREAD may return
_PROBE_MS = const(2000)  # with no #IPRECV for this long, read anyway (a URC may be lost)
_CME_NO_SOCKET = const(2104)
_HOST_MAX = const(253)
_CID_MAX = const(32)  # DTLS Connection ID bytes (mbed TLS's limit)


class Socket:
    # Options, in the module's own terms (AT#SOCKETCREATE):
    #   local_port:   0 lets the module choose.
    #   send_timeout, recv_timeout: the module's timeouts, seconds.
    #   urc:          1 announces frames without their length (as in the note), 2 with it.
    #   connect_timeout_ms: the host's wait for AT#TCPCONNECT/AT#DTLSCONNECT, handshake
    #                 included.
    def __init__(
        self,
        modem,
        proto,
        sec_id=None,
        *,
        local_port=0,
        send_timeout=60,
        recv_timeout=60,
        urc=1,
        connect_timeout_ms=90000,
    ):
        if proto != TCP and proto != UDP:
            raise ValueError("proto must be st87.TCP or st87.UDP")
        self.proto = proto
        if sec_id is not None:
            modem.tls._check_id(sec_id)
        _check_int("local_port", local_port, 0, 65535)
        _check_int("send_timeout", send_timeout, 1, 3600)
        _check_int("recv_timeout", recv_timeout, 1, 3600)
        _check_int("urc", urc, 1, 2)
        self._modem = modem
        self._ch = modem.channel
        self.sec_id = sec_id
        self.state = CLOSED
        self.id = None
        self._pending = 0  # frames announced by #IPRECV and not read yet
        self._timeout_ms = None  # None: block; see settimeout()
        self._connect_ms = connect_timeout_ms
        self._create = b"".join(
            (
                b"AT#SOCKETCREATE=5,0,TCP," if proto == TCP else b"AT#SOCKETCREATE=5,0,UDP,",
                str(local_port).encode(),
                b",",
                str(send_timeout).encode(),
                b",",
                str(recv_timeout).encode(),
                b",",
                str(urc).encode(),
                b"" if sec_id is None else b"," + str(sec_id).encode(),
            )
        )
        self._io_ms = (send_timeout + 5) * 1000
        self._spill = None  # made for the first frame larger than a caller's buffer
        self._spill_at = 0
        self._spill_end = 0
        self._dest_obj = None  # the caller's last buffer and its memoryview, reused
        # Bound once, as an instance attribute of the same name: passing it to the channel on
        # every read then allocates nothing.
        self._frame_buffer = self._frame_buffer
        self._dest = None
        self._send_n = -1
        self._send_cmd = None
        self._datagram = False  # UDP: a whole datagram waits in the spill buffer
        self._cid = None
        self._cid_negotiated = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def settimeout(self, seconds):
        self._timeout_ms = None if seconds is None else int(seconds * 1000)

    # Create the module's socket and connect it; with a security profile the module runs the
    # TLS (TCP) or DTLS (UDP) handshake before it answers. On any failure the module's socket
    # is freed and the error (ATError, ATTimeout) is raised.
    #   cid: for DTLS, the Connection ID (RFC 9146) to propose, 1..32 bytes; whether the peer
    #        took it is in cid_negotiated.
    # A UDP socket without a profile sends plain datagrams to the address; nothing is sent
    # to the module for the connect beyond creating the socket.
    def connect(self, address, cid=None):
        host, port = address
        host = _check_host(host)
        _check_int("port", port, 1, 65535)
        if cid is not None:
            if self.proto != UDP or self.sec_id is None:
                raise ValueError("a Connection ID is for DTLS: a UDP socket with a sec_id")
            if not isinstance(cid, (bytes, bytearray)) or not 0 < len(cid) <= _CID_MAX:
                raise ValueError("cid must be 1..{} bytes".format(_CID_MAX))
        if self.state != CLOSED:
            raise ModemError("socket already used")
        ch = self._ch
        for line in ch.command(self._create, 10000, b"#SOCKETCREATE:"):
            self.id = int(line[line.find(b":") + 1 :])
        if self.id is None:
            raise ModemError("AT#SOCKETCREATE gave no socket id")
        self._modem._sockets[self.id] = self
        self.state = CREATED
        sid = str(self.id).encode()
        target = host + b"," + str(port).encode()
        try:
            self.state = CONNECTING
            if self.proto == TCP:
                cmd = b"AT#TCPCONNECT=5," + sid + b"," + target
                ch.command(cmd, self._connect_ms, b"#TCPCONNECT:")
            elif self.sec_id is not None:
                cmd = b"AT#DTLSCONNECT=5," + sid + b"," + target
                if cid is not None:
                    ch.command(
                        cmd + b"," + str(len(cid)).encode() + b",",
                        self._connect_ms,
                        b"#DTLSCONNECT:",
                        hexdata=cid,
                    )
                else:
                    ch.command(cmd, self._connect_ms, b"#DTLSCONNECT:")
        except BaseException:
            self._free()
            self.state = CLOSED
            raise
        self.state = CONNECTED
        self._cid = cid
        self._read_cmd = b"AT#IPREAD=5," + sid + b"\r"
        if self.proto == TCP:
            self._send_head = b"AT#IPSENDTCP=5," + sid + b",1,"
        else:
            # <rai> 0: no release-assistance hint; send(..., rai=) sets one per datagram.
            self._send_head = b"AT#IPSENDUDP=5," + sid + b"," + target + b",0,1,"
            self._send_rai = b"AT#IPSENDUDP=5," + sid + b"," + target + b","

    # Whether the peer took the Connection ID proposed at connect (True/False), None when
    # none was proposed. Asked of the module once:
    #   AT#DTLSCONNECT? -> "#DTLSCONNECT: <cid>,<sock>,<state>,<cid negotiated 0|1>"
    @property
    def cid_negotiated(self):
        if self._cid is None or self.id is None:
            return None
        if self._cid_negotiated is None:
            for line in self._ch.command(b"AT#DTLSCONNECT?"):
                if field_int(line, 0, len(line), 1) == self.id:
                    self._cid_negotiated = field_int(line, 0, len(line), 3) == 1
        return self._cid_negotiated

    def _check_open(self):
        if self.state != CONNECTED:
            if self.state == FAILED:
                raise ModemError("socket closed by the peer or by a module reboot")
            raise ModemError("socket not connected")

    # Send with the binary data type; returns the count sent. TCP: up to 1400 bytes of data
    # (write() sends the rest). UDP: data is one datagram of at most 1400 bytes; a larger one
    # is refused (ValueError), never cut. rai (UDP): the release-assistance hint, 0..2.
    def send(self, data, rai=0):
        self._check_open()
        n = len(data)
        if n == 0:
            return 0
        if n > _SEND_MAX:
            if self.proto == UDP:
                raise ValueError(
                    "datagram of {} bytes is larger than one send ({})".format(n, _SEND_MAX)
                )
            n = _SEND_MAX
            data = memoryview(data)[:n]
        if rai:
            _check_int("rai", rai, 0, 2)
            cmd = self._send_rai + str(rai).encode() + b",1," + str(n).encode() + b"\r"
            self._send_n = -1
        elif n != self._send_n:
            self._send_cmd = cmd = self._send_head + str(n).encode() + b"\r"
            self._send_n = n
        else:
            cmd = self._send_cmd
        name = b"AT#IPSENDTCP" if self.proto == TCP else b"AT#IPSENDUDP"
        self._ch.send_binary(cmd, name, data, self._io_ms)
        return n

    # Send all of data, in as many sends as it takes (UDP: one datagram).
    def write(self, data):
        if self.proto == UDP:
            return self.send(data)
        mv = memoryview(data)
        i = 0
        while i < len(mv):
            i += self.send(mv[i:] if i else data)
        return i

    # Read the next received bytes into buf; returns the count, 0 at end of stream (the peer
    # closed and everything was read). Blocks up to the timeout set by settimeout (forever
    # by default) and raises ATTimeout when it passes.
    def readinto(self, buf, nbytes=None):
        if buf is not self._dest_obj:
            self._dest_obj = buf
            self._dest = memoryview(buf)
        dest = self._dest
        if nbytes is not None and nbytes < len(dest):
            dest = dest[:nbytes]
        if not len(dest):
            return 0

        # A datagram that did not fit the previous buffer, whole or not at all.
        if self._datagram:
            return self._take_datagram(dest)

        # Bytes left over from a frame larger than the previous buffer come first.
        if self._spill_at < self._spill_end:
            k = min(len(dest), self._spill_end - self._spill_at)
            dest[0:k] = self._spill[self._spill_at : self._spill_at + k]
            self._spill_at += k
            return k

        if self.state != CONNECTED and not self._pending:
            if self.state == FAILED:
                return 0
            raise ModemError("socket not connected")

        # A datagram that might not fit goes to the spill buffer whole, so it stays whole (and
        # one larger than dest is never split); of a TCP frame, only what does not fit dest
        # goes there, and the spill buffer is asked for (_frame_buffer) only then.
        small = self.proto == UDP and len(dest) < FRAME_MAX
        if small:
            into, over = self._frame_buffer(FRAME_MAX), None
        else:
            into, over = dest, self._frame_buffer if self.proto == TCP else None

        deadline = None if self._timeout_ms is None else ticks_add(ticks_ms(), self._timeout_ms)
        while True:
            if not self._pending:
                self._wait(deadline)
            n = self._ch.transact(
                self._read_cmd,
                b"AT#IPREAD",
                b"#IPREAD:",
                self._io_ms,
                into,
                over,
            )
            if n == 0:
                # Nothing queued: the announcement count was off (or this was a probe).
                self._pending = 0
                if self.state == FAILED:
                    return 0
                continue
            if self._pending:
                self._pending -= 1
            if small:
                self._spill_end = n
                self._datagram = True
                return self._take_datagram(dest)
            if n > len(dest):
                self._spill_at = 0
                self._spill_end = n - len(dest)
                return len(dest)
            return n

    # The spill buffer, with room for k bytes: the one this socket holds, or one the modem
    # lends or makes (Modem._frame_buffer), with room too for the largest frame the caller's
    # buffer may leave over.
    def _frame_buffer(self, k):
        spill = self._spill
        if spill is None or len(spill) < k:
            self._spill = None  # the old one can be collected for the new one
            spill = self._modem._frame_buffer(max(k, FRAME_MAX - len(self._dest)))
            self._spill = spill
        return spill

    def _take_datagram(self, dest):
        n = self._spill_end
        if n > len(dest):
            raise ValueError(
                "datagram of {} bytes does not fit a {}-byte buffer".format(n, len(dest))
            )
        dest[0:n] = self._spill[0:n]
        self._datagram = False
        self._spill_end = 0
        return n

    # Wait for an #IPRECV (or the peer's close). After _PROBE_MS without one, return anyway so
    # the caller reads: a lost URC must not hang the socket.
    def _wait(self, deadline):
        probe = ticks_add(ticks_ms(), _PROBE_MS)
        while not self._pending and self.state == CONNECTED:
            now = ticks_ms()
            if deadline is not None and ticks_diff(deadline, now) <= 0:
                raise ATTimeout("recv timed out")
            if ticks_diff(probe, now) <= 0:
                return
            step = ticks_diff(probe, now)
            if deadline is not None:
                step = min(step, ticks_diff(deadline, now))
            self._modem.poll(step)

    def recv(self, n):
        buf = bytearray(n)
        k = self.readinto(buf)
        return bytes(buf) if k == n else bytes(buf[:k])

    read = recv

    # Free the module's socket. Safe to call in any state, more than once.
    def close(self):
        if self.id is not None:
            self.state = CLOSING
            self._free()
        self.state = CLOSED
        self._pending = 0

        # Unread bytes go with the socket; its spill buffer goes back to the modem for the next.
        self._spill_at = self._spill_end = 0
        self._datagram = False
        if self._spill is not None:
            self._modem._frame_buffer_back(self._spill)
            self._spill = None

    def _free(self):
        sid = self.id
        self.id = None
        self._modem._sockets.pop(sid, None)
        try:
            self._ch.command(b"AT#SOCKETCLOSE=5," + str(sid).encode(), 10000)
        except ATError as e:
            if e.code != _CME_NO_SOCKET:
                raise

    # Called by the modem's URC handlers.
    def _peer_closed(self):
        if self.state == CONNECTED:
            self.state = FAILED

    def _gone(self):
        self.id = None
        self.state = FAILED
        self._pending = 0


def _check_int(what, v, lo, hi):
    if not isinstance(v, int) or v < lo or v > hi:
        raise ValueError("{} must be an int in {}..{}".format(what, lo, hi))


# A host name or IP address as bytes, refused if the module could not take it as a parameter.
def _check_host(host):
    if isinstance(host, str):
        host = host.encode()
    if not isinstance(host, (bytes, bytearray)) or not 0 < len(host) <= _HOST_MAX:
        raise ValueError("host must be a name or address of 1..253 characters")
    for c in host:
        if c <= 32 or c > 126 or c == 44 or c == 34:  # controls, space, ',', '"'
            raise ValueError("host has a character the module cannot take")
    return bytes(host)
