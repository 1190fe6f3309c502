# Fake UARTs for the benchmarks, on MicroPython (and CPython). Not a test double with checks:
# they only feed bytes and count what is written.
#
#   Replay:    hands out a list of recorded reply segments, one per command line written (a
#              write ending in CR), in chunks of `chunk` bytes, the way a UART FIFO does.
#   Responder: a scripted module for the send + receive cycle. It answers the few commands
#              Modem.start() and Socket.connect() send, then AT#IPSENDTCP (binary) and
#              AT#IPREAD with a 64-byte payload and an #IPRECV, from replies built once, so that
#              its own hot path allocates nothing (it copies byte by byte with a range loop).

_CR = 13
_CUT = {}  # (id(segment), chunk) -> (segment, its chunks as bytes, as memoryviews)


class Replay:
    def __init__(self, segments, chunk=64):
        self.segments = segments  # list of bytes, the reply to the n-th command line
        self.chunk = chunk
        # Each segment cut into its UART chunks once, as bytes (for read) and memoryviews (for
        # readinto): a hardware UART's read is C code, so the stand-in does as little as it can
        # per call and allocates only when a caller asks for less than a chunk.
        # A recording repeats its segments, and several replays may serve one recording: each
        # distinct segment is cut once and shared.
        for seg in segments:
            if (id(seg), chunk) not in _CUT:
                cs = [seg[i : i + chunk] for i in range(0, len(seg), chunk)]
                _CUT[id(seg), chunk] = (seg, cs, [memoryview(c) for c in cs])
        self._chunks = [_CUT[id(seg), chunk][1] for seg in segments]
        self._views = [_CUT[id(seg), chunk][2] for seg in segments]
        self.reset()

    def reset(self):
        self._i = 0
        self._cur = []
        self._curv = []
        self._k = 0
        self._part = None  # what is left of a chunk a reader took only in part
        self.written = 0

    def write(self, buf):
        n = len(buf)
        self.written += n
        if n and buf[n - 1] == _CR and self._i < len(self.segments):
            # The previous segment is consumed in full before the next command is written.
            self._cur = self._chunks[self._i]
            self._curv = self._views[self._i]
            self._k = 0
            self._part = None
            self._i += 1
        return n

    # The next chunk of the segment (the rest of a part-read one first), or None.
    def _next(self, chunks):
        c = self._part
        if c is None:
            k = self._k
            if k == len(chunks):
                return None
            c = chunks[k]
            self._k = k + 1
        return c

    def readinto(self, buf, nbytes=None):
        c = self._next(self._curv)
        if c is None:
            return None
        n = len(c)
        room = len(buf) if nbytes is None else nbytes
        if n > room:
            buf[0:room] = c[:room]
            self._part = c[room:]
            return room
        buf[0:n] = c
        self._part = None
        return n

    def read(self, n=None):
        part = self._part is not None
        c = self._next(self._cur)
        if c is None:
            return None
        if part:
            c = bytes(c)
        if n is not None and len(c) > n:
            self._part = memoryview(c)[n:]
            return c[:n]
        self._part = None
        return c

    def any(self):
        if self._part is not None:
            return len(self._part)
        return sum(len(c) for c in self._cur[self._k :])


def _reply(*lines):
    return b"".join(b"\r\n" + ln + b"\r\n" for ln in lines) + b"\r\nOK\r\n"


OK = b"\r\nOK\r\n"


class Responder:
    def __init__(self, payload_len=64, chunk=64):
        self.chunk = chunk
        self.payload = bytes((i * 7 + 3) & 0xFF for i in range(payload_len))
        n = str(payload_len).encode()
        self.r_ok = OK
        # After the payload of a send: its OK, then the peer's answer is announced.
        self.r_sent = OK + b"\r\n#IPRECV: 5,0\r\n"
        self.r_read = b"\r\n#IPREAD: 5,0," + n + b"\r\n" + self.payload + OK
        self.r_cmee = _reply(b"+CMEE: 1")
        self.r_cfun = _reply(b"+CFUN: 1")
        self.r_create = _reply(b"#SOCKETCREATE: 0")
        self.r_connect = _reply(b"#TCPCONNECT: 5,0")
        self._rx = OK
        self._pos = len(OK)
        self._line = b""  # a setup command line written in pieces
        self._binary = 0  # bytes of binary payload still to come from the driver
        self.written = 0
        self.reads = 0

    def _answer(self, r):
        self._rx = r
        self._pos = 0

    def write(self, buf):
        n = len(buf)
        self.written += n
        if self._binary:
            self._binary -= n
            if self._binary <= 0:
                self._binary = 0
                self._answer(self.r_sent)
            return n
        # Hot path first, by byte tests (no slices): AT#IPSENDTCP=5,0,1,<n>\r, AT#IPREAD=5,0\r
        if n > 6 and buf[2] == 35 and buf[3] == 73 and buf[4] == 80:  # "#IP"
            if buf[5] == 83:  # S: binary send; the count is the last field
                k = 0
                i = n - 2
                m = 1
                while buf[i] != 44:
                    k += (buf[i] - 48) * m
                    m *= 10
                    i -= 1
                self._binary = k
                self._answer(self.r_ok)
            else:
                self._answer(self.r_read)
            return n
        self._line += bytes(buf)
        if buf[n - 1] == _CR:
            self._setup(self._line)
            self._line = b""
        return n

    # Start-up and connect commands (off the hot path; may allocate).
    def _setup(self, cmd):
        if cmd.startswith(b"AT+CMEE?"):
            self._answer(self.r_cmee)
        elif cmd.startswith(b"AT+CFUN?"):
            self._answer(self.r_cfun)
        elif cmd.startswith(b"AT#SOCKETCREATE="):
            self._answer(self.r_create)
        elif cmd.startswith(b"AT#TCPCONNECT"):
            self._answer(self.r_connect)
        else:
            self._answer(self.r_ok)

    def readinto(self, buf, nbytes=None):
        rx = self._rx
        p = self._pos
        n = len(rx) - p
        if n <= 0:
            return None
        k = len(buf) if nbytes is None else nbytes
        n = min(n, k)
        n = min(n, self.chunk)
        for i in range(n):
            buf[i] = rx[p + i]
        self._pos = p + n
        self.reads += 1
        return n

    # For drivers that read with read(): the bytes object is the UART API's own allocation.
    def read(self, n=None):
        rx = self._rx
        p = self._pos
        k = len(rx) - p
        if k <= 0:
            return None
        if n is not None and k > n:
            k = n
        k = min(k, self.chunk)
        self._pos = p + k
        return rx[p : p + k]

    def any(self):
        return len(self._rx) - self._pos
