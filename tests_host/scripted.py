# A scripted stand-in for machine.UART, for channel and golden tests that need exact control of
# every byte. Each step is (what the driver must write, what the module answers). Replies are
# delivered in chunks of `chunk` bytes (1 = byte by byte), the way a real UART FIFO hands them
# over, and every byte written is recorded so tests can assert on the exact AT lines.


class ScriptError(AssertionError):
    pass


class ScriptedUART:
    def __init__(self, steps=(), chunk=8, unsolicited=b""):
        self.steps = list(steps)
        self.chunk = chunk
        self.rx = bytearray(unsolicited)  # bytes the driver has yet to read
        self.written = bytearray()
        self._pending = bytearray()  # written bytes not yet matched to a step

    def add(self, expect, reply):
        self.steps.append((expect, reply))

    def inject(self, data):
        self.rx += data

    def write(self, buf):
        data = bytes(buf)
        self.written += data
        self._pending += data
        while self.steps:
            expect, reply = self.steps[0]
            if len(self._pending) < len(expect):
                if not expect.startswith(bytes(self._pending)):
                    raise ScriptError(
                        f"driver wrote {bytes(self._pending)!r}, expected {expect!r}"
                    )
                break
            if not self._pending.startswith(expect):
                raise ScriptError(f"driver wrote {bytes(self._pending)!r}, expected {expect!r}")
            del self._pending[: len(expect)]
            self.steps.pop(0)
            self.rx += reply
        else:
            if self._pending:
                raise ScriptError(f"driver wrote {bytes(self._pending)!r} past the script")
        return len(data)

    def readinto(self, buf, nbytes=None):
        n = min(len(buf) if nbytes is None else nbytes, self.chunk, len(self.rx))
        if not n:
            return None
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n

    def any(self):
        return len(self.rx)

    def lines(self):
        # The command lines written, split at CR (binary payloads show as their own pieces).
        return [ln for ln in bytes(self.written).split(b"\r") if ln]


def reply(*lines, final=b"OK"):
    # Frame lines the way the module does: each as \r\n<line>\r\n, then the final result.
    out = b"".join(b"\r\n" + ln + b"\r\n" for ln in lines)
    return out + (b"\r\n" + final + b"\r\n" if final is not None else b"")


OK = reply()

# What Modem.start() exchanges with a module that is already up, echo off.
START = [
    (b"AT+CMEE?\r", reply(b"+CMEE: 1")),
    (b"ATE0\r", OK),
    (b"AT+CMEE=1\r", OK),
    (b"AT+CFUN?\r", reply(b"+CFUN: 1")),
    (b"AT#SOCKETCREATE?\r", OK),
]
