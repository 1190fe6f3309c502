# st87: the AT channel (UART I/O, line framing, final results, URC dispatch).
# MIT license; Copyright (c) 2026 st87 developers

# One Channel owns the UART. It writes a command, then reads lines until the command's final
# result, sorting every line on the way into one of:
#   - the final result: OK, ERROR, "+CME ERROR: <n>" or a bare "+CME ERROR";
#   - an information line of the command in flight ("#SOCKETCREATE: 0" for AT#SOCKETCREATE),
#     or a bare value line ("ST87M01" for ATI, a hex line after "#TLSKEYADD: ...");
#   - the echo of the command (echo is on after power-up until ATE0 takes effect);
#   - a URC, handed to the handler registered for its prefix, or dropped.
#
# Memory: one preallocated receive buffer, filled by uart.readinto and never grown. Lines are
# split only at CRLF, so a read timeout can never cut a line in two. A line longer than the
# buffer is dropped and the parser resyncs at the next CRLF. Length-framed payloads (#IPREAD)
# are copied by count into the caller's buffer.
#
# Allocation: MicroPython has no copy between two buffers at offsets, so every offset needs a
# memoryview slice (a small heap object, 16 bytes on a 32-bit board). The steady state of a
# sensor avoids them: the buffer restarts at offset 0 whenever it has been parsed to the end,
# and payloads of up to _COPY_LOOP bytes go through it and are copied byte by byte. A fill
# that continues a partial line takes one slice, and so does each UART read of a longer
# payload, which is read straight into the caller's buffer.
#
# Speed: a line is classified by its first byte before any comparison, and URC handlers are
# found by the byte after "+" or "#", so a line costs a handful of C-level calls.

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    from time import sleep_ms, ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: same semantics, including the wraparound of the tick counter
    import time

    _TICKS_PERIOD = const(1 << 30)
    _TICKS_HALF = const(1 << 29)

    def ticks_ms():
        return int(time.monotonic() * 1000) % _TICKS_PERIOD

    def ticks_add(t, delta):
        return (t + delta) % _TICKS_PERIOD

    def ticks_diff(a, b):
        return ((a - b + _TICKS_HALF) % _TICKS_PERIOD) - _TICKS_HALF

    def sleep_ms(ms):
        time.sleep(ms / 1000)


from .errors import ATError, ATTimeout, ModemError, ModemRebooted

_RXBUF = const(1024)
_COPY_LOOP = const(64)  # payload bytes copied by a loop rather than through a memoryview slice
_HEXCHUNK = const(32)  # credential bytes hex-encoded per UART write
_RESYNC_TRIES = const(5)
_RESYNC_MS = const(600)

_CR = const(13)
_LF = const(10)
_PLUS = const(43)
_HASH = const(35)
_SPACE = const(32)
_QUOTE = const(34)
_A = const(65)
_E = const(69)
_O = const(79)

_HEX = b"0123456789ABCDEF"

# What the trace hook is called with: (direction, bytes). Directions:
TX = ">"  # a line or payload written to the module (credentials redacted)
RX = "<"  # a line read from the module
DROP = "x"  # a line read and dropped: unknown URC, over-long line, stale reply


# The n-th (0-based) comma-separated field after the colon of buf[s:e], as an int; -1 when
# absent or not a number. Quotes and spaces around digits are skipped. Allocates nothing.
#   "#IPREAD: 5,0,20" -> field 2 = 20
def field_int(buf, s, e, n):
    i = buf.find(b":", s, e)
    i = s if i < 0 else i + 1
    while n:
        i = buf.find(b",", i, e)
        if i < 0:
            return -1
        i += 1
        n -= 1
    v = -1
    while i < e:
        c = buf[i]
        if 48 <= c <= 57:
            v = (0 if v < 0 else v * 10) + c - 48
        elif c != _SPACE and c != _QUOTE or v >= 0:
            break
        i += 1
    return v


# The n-th field of an information line as bytes (quotes stripped), or None. For replies off the
# hot path (identity, listing), where allocating the result is fine.
def field(line, n):
    i = line.find(b":")
    parts = line[i + 1 :].split(b",")
    if n >= len(parts):
        return None
    return parts[n].strip().strip(b'"')


# Short fingerprint of a non-secret credential body for traces: its length and 4 bytes of
# SHA-256, enough to tell two certificates apart in a log without printing them.
def _fingerprint(data):
    try:
        import binascii
        import hashlib

        h = binascii.hexlify(hashlib.sha256(data).digest()[:4])
    except (ImportError, AttributeError):  # a port built without hashlib
        h = b"?"
    return b"<" + str(len(data)).encode() + b" bytes sha256:" + h + b">"


class Channel:
    def __init__(self, uart, trace=None, rxbuf=_RXBUF):
        self._uart = uart
        self._readinto = uart.readinto  # bound once: it is called for every chunk received
        self.trace = trace
        self._buf = bytearray(rxbuf)
        self._size = rxbuf
        self._mv = memoryview(self._buf)
        self._head = 0  # first byte not yet parsed
        self._tail = 0  # end of the bytes received
        self._scan = 0  # where the search for the next CRLF resumes (head <= scan <= tail)
        self._skip = False  # inside an over-long line: drop up to the next CRLF
        self._hex = bytearray(2 * _HEXCHUNK)
        self._hexmv = memoryview(self._hex)
        # URC handlers by the byte after "+" or "#": {byte: [(prefix, handler), ...]}.
        self._urcs = {}
        self.dirty = False  # a command timed out: resync before the next one

        # A sleeping module loses the first command it is sent. After this long without a
        # command, the next one is preceded by a probe (resync) that wakes it; None: never.
        self.idle_probe_ms = None
        self._last_cmd = ticks_ms()
        self.dropped = 0  # lines dropped (unknown URCs, over-long lines), for diagnostics

        # The command in flight, for echo detection and error messages.
        self._name = b""
        self._redacted = None

    # Register handler(buf, start, end) for lines that start with prefix (bytes: "+" or "#"
    # and at least one more byte, e.g. b"#IPRECV:"). The handler runs inside whatever command
    # is waiting; it must not send commands, and buf[start:end] is only valid during the call.
    def on(self, prefix, handler):
        self._urcs.setdefault(prefix[1], []).append((prefix, handler))

    # --- reading ---------------------------------------------------------------------------

    # Read what the UART has into the free end of the buffer. Returns the byte count (0 when
    # nothing came within the UART's own timeout).
    def _fill(self):
        t = self._tail
        if self._head == t:
            # Everything parsed: start again at offset 0, which needs no memoryview slice (so
            # the steady state allocates nothing).
            self._head = self._tail = self._scan = t = 0
        elif t == self._size:
            t = self._make_room()
        n = self._readinto(self._mv[t:] if t else self._mv)
        if n:
            self._tail = t + n
            return n
        return 0

    # The buffer is full: move the unparsed bytes to its start or, if a single line fills all
    # of it, drop that line. Returns the new tail.
    def _make_room(self):
        if self._head:
            self._compact()
            return self._tail
        # A whole buffer without CRLF: drop it, keeping a final CR that may pair with the next
        # byte, and skip the rest of that line.
        buf = self._buf
        keep = 1 if buf[self._tail - 1] == _CR else 0
        if keep:
            buf[0] = _CR
        self._head = self._scan = 0
        self._tail = keep
        if not self._skip:
            self.dropped += 1
            self._t(DROP, b"<over-long line>")
        self._skip = True
        return keep

    # Move the unparsed bytes to the start of the buffer. Done in pieces no longer than the
    # gap, so that source and destination never overlap.
    def _compact(self):
        mv = self._mv
        src = self._head
        end = self._tail
        dst = 0
        while src < end:
            k = min(self._head, end - src)
            mv[dst : dst + k] = mv[src : src + k]
            dst += k
            src += k
        self._scan -= self._head
        self._tail = dst
        self._head = 0

    # The next non-blank line in self._buf: returns its end (CRLF and trailing CRs excluded)
    # and leaves its start in self._ls; -1 once the deadline has passed. (No tuple: the hot
    # path allocates nothing.)
    def _line(self, deadline):
        buf = self._buf
        while True:
            i = buf.find(b"\r\n", self._scan, self._tail)
            if i >= 0:
                s = self._head
                self._head = self._scan = i + 2
                if i == s and not self._skip:
                    continue  # the blank line before every response line
                if self._skip:
                    self._skip = False
                    continue
                # An echoed command ends in its own CR before the response's CRLF.
                while buf[i - 1] == _CR:
                    i -= 1
                    if i == s:
                        break
                else:
                    self._ls = s
                    return i
                continue
            # No CRLF yet: the next search starts at the last byte, which may be the CR.
            if self._tail > self._scan + 1:
                self._scan = self._tail - 1
            if not self._fill():
                if ticks_diff(deadline, ticks_ms()) <= 0:
                    return -1
                sleep_ms(1)

    # Read exactly n raw bytes into mv[0:n]: first what the receive buffer already holds, then
    # the rest. Returns False if the deadline passed first.
    def _read_exact(self, mv, n, deadline):
        if n <= _COPY_LOOP:
            return self._read_small(mv, n, deadline)
        h = self._head
        k = min(n, self._tail - h)
        if k:
            mv[0:k] = self._mv[h : h + k]
            self._head = self._scan = h + k
        readinto = self._readinto
        while k < n:
            got = readinto(mv[k:n])
            if got:
                k += got
            elif ticks_diff(deadline, ticks_ms()) <= 0:
                return False
        return True

    # A short payload goes through the receive buffer and is copied byte by byte: no slices.
    def _read_small(self, mv, n, deadline):
        buf = self._buf
        k = 0
        while k < n:
            h = self._head
            m = min(n - k, self._tail - h)
            if m <= 0:
                if not self._fill() and ticks_diff(deadline, ticks_ms()) <= 0:
                    return False
                continue
            for i in range(m):
                mv[k + i] = buf[h + i]
            k += m
            self._head = self._scan = h + m
        return True

    def _is(self, s, e, word):
        return e - s == len(word) and self._buf.startswith(word, s)

    def _t(self, direction, data):
        if self.trace:
            self.trace(direction, data)

    # Trace the line buf[s:e]; the copy is made only when a trace hook is set.
    def _tl(self, direction, s, e):
        if self.trace:
            self.trace(direction, bytes(self._mv[s:e]))

    def _dispatch(self, s, e):
        buf = self._buf
        if e - s > 1:
            for prefix, handler in self._urcs.get(buf[s + 1], ()):
                if buf.startswith(prefix, s):
                    if self.trace:  # checked here: no call per line when not tracing
                        self._tl(RX, s, e)
                    handler(buf, s, e)
                    return
        self.dropped += 1
        self._tl(DROP, s, e)

    # Process URCs already received or arriving within timeout_ms; no command is sent.
    # Returns the number handled, as soon as one was and nothing more is waiting.
    def poll(self, timeout_ms=0):
        deadline = ticks_add(ticks_ms(), timeout_ms)
        handled = 0
        while True:
            e = self._line(ticks_ms() if handled else deadline)
            if e < 0:
                return handled
            s = self._ls
            if self._buf[s] == _PLUS or self._buf[s] == _HASH:
                self._dispatch(s, e)
                handled += 1
            else:
                # A stray OK or value line with no command in flight: a late reply.
                self.dropped += 1
                self._tl(DROP, s, e)

    # Wait for the final result of the command just written.
    #   prefix:  bytes like b"#IPREAD:" that mark the command's information lines.
    #   lines:   a list to append information lines (bytes) to, or None to drop them.
    #   dest, spill: the information line carries a payload length as its last field and
    #            is followed by that many raw bytes, which fill dest (a memoryview), then what
    #            spill(k) returns: a memoryview of at least k bytes, asked for only when a
    #            frame is larger than dest (so the buffer is made only then). Returns the
    #            payload length (else 0).
    # Raises ATError on ERROR/+CME ERROR, ATTimeout at the deadline (and marks the channel for
    # resync), ModemRebooted when a boot URC arrives instead.
    def _final(self, deadline, prefix, lines=None, dest=None, spill=None):
        buf = self._buf
        got = 0
        while True:
            e = self._line(deadline)
            if e < 0:
                self.dirty = True
                raise ATTimeout("no reply to " + self._name.decode())
            s = self._ls
            c = buf[s]
            n = e - s

            # The final results, by their first byte.
            if c == _O and n == 2 and buf[s + 1] == 75:  # OK
                if self.trace:
                    self.trace(RX, b"OK")
                return got
            if c == _E and n == 5 and buf.startswith(b"ERROR", s):
                self._t(RX, b"ERROR")
                raise ATError(self._name.decode())

            if c == _PLUS or c == _HASH:
                if prefix is not None and buf.startswith(prefix, s):
                    if dest is not None:
                        got = self._frame(s, e, dest, spill, deadline)
                        continue
                    if self.trace:  # checked here: no call per line when not tracing
                        self._tl(RX, s, e)
                    if lines is not None:
                        lines.append(bytes(self._mv[s:e]))
                    continue
                if c == _PLUS and buf.startswith(b"+CME ERROR", s):
                    self._tl(RX, s, e)
                    code = field_int(buf, s, e, 0) if buf.find(b":", s, e) > 0 else -1
                    raise ATError(self._name.decode(), code if code >= 0 else None)
                self._dispatch(s, e)
                if c == _HASH and buf.startswith(b"#REBOOT", s):
                    raise ModemRebooted(self._name.decode() + " interrupted by a reboot")
                continue

            if c == _A and n > 1 and buf[s + 1] == 84:  # "AT": our command echoed
                self._echo(s, e)
                continue

            # A bare value line: the reply of ATI/AT+CGSN, or the hex line that follows an
            # information line ("#TLSKEYADD: ..." then the public key).
            if lines is not None:
                if self.trace:
                    self._tl(RX, s, e)
                lines.append(bytes(self._mv[s:e]))
            else:
                self.dropped += 1
                self._tl(DROP, s, e)

    def _echo(self, s, e):
        if self._redacted is not None:
            # The echo of a secret command holds the secret: trace the redacted form and wipe
            # the bytes from the receive buffer.
            self._t(RX, self._redacted)
            buf = self._buf
            for i in range(s, e):
                buf[i] = 0
        else:
            self._tl(RX, s, e)

    # Copy the payload announced by the information line buf[s:e] into dest, then spill.
    def _frame(self, s, e, dest, spill, deadline):
        buf = self._buf
        n = field_int(buf, s, e, 2)
        if n < 0:
            # No length field: take the line as an ordinary information line.
            self._tl(DROP, s, e)
            return 0
        self._tl(RX, s, e)
        a = min(n, len(dest))
        if n > a:
            if spill is not None:
                spill = spill(n - a)
            if spill is None or n > a + len(spill):
                # Never truncate silently: consume the frame, then fail.
                self.dirty = True
                raise ModemError("frame of {} bytes exceeds the receive buffers".format(n))
        if not self._read_exact(dest, a, deadline) or (
            n > a and not self._read_exact(spill, n - a, deadline)
        ):
            self.dirty = True
            raise ATTimeout("payload of " + self._name.decode() + " cut short")
        if self.trace:
            self.trace(RX, b"<" + str(n).encode() + b" bytes>")
        return n

    # --- writing ---------------------------------------------------------------------------

    # Before each command: probe a module that may have fallen asleep, resync after a timeout.
    def _begin(self, now, name, redacted=None):
        idle = self.idle_probe_ms
        if idle is not None and ticks_diff(now, self._last_cmd) > idle:
            self.dirty = True
        self._last_cmd = now
        if self.dirty:
            self.resync()
        self._name = name
        self._redacted = redacted

    # Write data as uppercase hex in chunks, without building the whole string.
    def _write_hex(self, data):
        mv = memoryview(data)
        out = self._hex
        i = 0
        n = len(mv)
        while i < n:
            k = min(_HEXCHUNK, n - i)
            j = 0
            for b in mv[i : i + k]:
                out[j] = _HEX[b >> 4]
                out[j + 1] = _HEX[b & 15]
                j += 2
            self._uart.write(self._hexmv[:j] if j < len(out) else out)
            i += k

    def _wipe_hex(self):
        out = self._hex
        for i in range(len(out)):
            out[i] = 0

    # Send one command and wait for its final result; returns the information lines.
    #   cmd:     the command line without CR (bytes), e.g. b"AT+CGSN", or its head when hexdata
    #            is given (b"AT#TLSKEYADD=0,1,2,4,32,"): hexdata follows it as uppercase hex.
    #   secret:  hexdata is a secret: traces show its length only and the hex scratch buffer
    #            is wiped afterwards.
    def command(self, cmd, timeout_ms=5000, prefix=None, hexdata=None, secret=False):
        now = ticks_ms()
        name = command_name(cmd)
        if hexdata is None:
            self._begin(now, name)
            if self.trace:
                self.trace(TX, cmd)
            self._uart.write(cmd)
        else:
            if secret:
                body = b"<secret " + str(len(hexdata)).encode() + b" bytes>"
            else:
                body = _fingerprint(hexdata)
            redacted = cmd + body
            self._begin(now, name, redacted if secret else None)
            self._t(TX, redacted)
            try:
                self._uart.write(cmd)
                self._write_hex(hexdata)
            finally:
                if secret:
                    self._wipe_hex()
        self._uart.write(b"\r")
        if prefix is None:
            prefix = info_prefix(name)
        lines = []
        self._final(ticks_add(now, timeout_ms), prefix, lines)
        return lines

    # Hot-path variant: cmd is prebuilt bytes ending in CR, the prefix is given, no lines are
    # kept. With dest (and spill) it returns the length of the payload that followed the
    # information line.
    def transact(self, cmd, name, prefix, timeout_ms, dest=None, spill=None):
        now = ticks_ms()
        self._begin(now, name)
        if self.trace:
            self.trace(TX, bytes(cmd[:-1]))
        self._uart.write(cmd)
        return self._final(ticks_add(now, timeout_ms), prefix, None, dest, spill)

    # Binary send: cmd announces len(data) bytes, the module answers OK, the bytes follow, and
    # a second OK says they were taken.
    def send_binary(self, cmd, name, data, timeout_ms):
        now = ticks_ms()
        deadline = ticks_add(now, timeout_ms)
        self._begin(now, name)
        if self.trace:
            self.trace(TX, bytes(cmd[:-1]))
        self._uart.write(cmd)
        self._final(deadline, None)
        if self.trace:
            self.trace(TX, b"<" + str(len(data)).encode() + b" bytes>")
        self._uart.write(data)
        self._final(deadline, None)

    # Bring the channel back in step after a timeout: send AT+CMEE?, whose answer has an
    # information line, and wait for that line followed by OK. A late OK of the command that
    # timed out comes before the marker and is dropped, so it can never be taken for the
    # answer to the next command.
    def resync(self, tries=_RESYNC_TRIES):
        self.dirty = False
        self._name = b"AT+CMEE?"
        self._redacted = None
        buf = self._buf
        for _ in range(tries):
            self._t(TX, b"AT+CMEE?")
            self._uart.write(b"AT+CMEE?\r")
            deadline = ticks_add(ticks_ms(), _RESYNC_MS)
            marker = False
            while True:
                e = self._line(deadline)
                if e < 0:
                    break
                s = self._ls
                if buf.startswith(b"+CMEE:", s):
                    marker = True
                    self._tl(RX, s, e)
                elif self._is(s, e, b"OK") and marker:
                    self._t(RX, b"OK")
                    return
                elif buf.startswith(b"+CME ERROR", s) or self._is(s, e, b"ERROR"):
                    self._tl(RX, s, e)
                    break  # e.g. 1120 while booting: ask again
                elif buf[s] == _PLUS or buf[s] == _HASH:
                    self._dispatch(s, e)
                elif buf.startswith(b"AT", s):
                    self._tl(RX, s, e)  # the echo, before ATE0
                else:
                    self.dropped += 1
                    self._tl(DROP, s, e)
        self.dirty = True
        raise ATTimeout("module does not answer")


# b"AT#TLSKEYADD=0,1" -> b"AT#TLSKEYADD"; b"AT+CFUN?" -> b"AT+CFUN"
def command_name(cmd):
    n = len(cmd)
    for sep in (b"=", b"?", b"\r"):
        i = cmd.find(sep, 2, n)
        if i >= 0:
            n = i
    return cmd if n == len(cmd) else cmd[:n]


# b"AT#TLSKEYADD" -> b"#TLSKEYADD:"; b"ATI" -> None (its reply is a bare value line)
def info_prefix(name):
    if len(name) > 3 and (name[2] == _PLUS or name[2] == _HASH):
        return name[2:] + b":"
    return None
