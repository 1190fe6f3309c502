# The naive reference driver the benchmarks compare st87 with: the way AT drivers are often
# written. uart.read() into a bytes buffer grown with +=, lines split off at CRLF, decoded to
# str, fields taken with str.split(","), payloads sliced out of the buffer. It does the same
# job as st87's channel for the benchmarked commands (final results, information lines, URCs,
# #IPREAD frames, binary sends), with none of its care for memory.

try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_add(t, d):
        return t + d

    def ticks_diff(a, b):
        return a - b


class NaiveError(Exception):
    pass


class Naive:
    def __init__(self, uart):
        self.uart = uart
        self.buf = b""
        self.pending = {}  # socket id -> frames announced
        self.registered = False
        self.ip_up = False
        self.urcs = 0

    def _more(self, deadline):
        data = self.uart.read()
        if data:
            self.buf += data
        elif ticks_diff(deadline, ticks_ms()) <= 0:
            raise NaiveError("timeout")

    def readline(self, deadline):
        while True:
            if b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                line = line.decode().strip()
                if line:
                    return line
                continue
            self._more(deadline)

    def _urc(self, line):
        self.urcs += 1
        name, _, rest = line.partition(":")
        fields = rest.strip().split(",")
        if name == "#IPRECV":
            sid = int(fields[1])
            self.pending[sid] = self.pending.get(sid, 0) + 1
        elif name == "+CEREG":
            stat = int(fields[0])
            self.registered = stat == 1 or stat == 5
        elif name == "#IPCFG":
            if int(fields[0]) == 5:
                self.ip_up = int(fields[2]) == 1

    # Send cmd (str, without CR); returns the information lines (str).
    def command(self, cmd, prefix=None, timeout_ms=5000):
        if prefix is None and len(cmd) > 3 and cmd[2] in "+#":
            prefix = cmd[2:].split("=")[0].split("?")[0] + ":"
        self.uart.write((cmd + "\r").encode())
        return self._final(ticks_add(ticks_ms(), timeout_ms), prefix)

    def _final(self, deadline, prefix=None, frame=None):
        lines = []
        while True:
            line = self.readline(deadline)
            if line == "OK":
                return lines
            if line == "ERROR" or line.startswith("+CME ERROR"):
                raise NaiveError(line)
            if prefix and line.startswith(prefix):
                if frame is not None:
                    n = int(line.split(":")[1].split(",")[2])
                    while len(self.buf) < n:
                        self._more(deadline)
                    frame[:n] = self.buf[:n]
                    self.buf = self.buf[n:]
                    lines.append(n)
                else:
                    lines.append(line)
            elif line.startswith("+") or line.startswith("#"):
                self._urc(line)
            elif not line.startswith("AT"):
                lines.append(line)

    # One AT#IPREAD frame into buf; returns its length.
    def read_frame(self, sid, buf, timeout_ms=5000):
        self.uart.write(("AT#IPREAD=5,{}\r".format(sid)).encode())
        got = self._final(ticks_add(ticks_ms(), timeout_ms), "#IPREAD:", buf)
        return got[0] if got else 0

    def send(self, sid, data, timeout_ms=5000):
        deadline = ticks_add(ticks_ms(), timeout_ms)
        self.uart.write("AT#IPSENDTCP=5,{},1,{}\r".format(sid, len(data)).encode())
        self._final(deadline)
        self.uart.write(data)
        self._final(deadline)
        return len(data)

    def poll(self, timeout_ms=0):
        deadline = ticks_add(ticks_ms(), timeout_ms)
        try:
            while True:
                line = self.readline(deadline)
                if line.startswith("+") or line.startswith("#"):
                    self._urc(line)
                    deadline = ticks_ms()  # handled one: return once nothing more waits
        except NaiveError:
            pass

    def readinto(self, sid, buf, timeout_ms=5000):
        while not self.pending.get(sid):
            self.poll(10)
        self.pending[sid] -= 1
        return self.read_frame(sid, buf, timeout_ms)
