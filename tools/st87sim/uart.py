# A machine.UART look-alike wired to an in-process Module, for CPython tests of the driver.
#
# As on MicroPython: `timeout` (ms) is how long a read waits for the first byte; a read then
# returns what has arrived (never more than the module's `chunk` fault-injection size), so
# it may return fewer bytes than asked for; None means nothing arrived in time.


class FakeUART:
    def __init__(self, module, baudrate=115200, *, timeout=20, **_ignored):
        self.module = module
        self.baudrate = baudrate
        self.timeout = timeout

    # Accepts and ignores the hardware settings machine.UART.init takes.
    def init(self, baudrate=None, *, timeout=None, **_ignored):
        if baudrate is not None:
            self.baudrate = baudrate
        if timeout is not None:
            self.timeout = timeout

    def deinit(self):
        pass

    def write(self, buf):
        data = bytes(buf)
        self.module.host_write(data)
        return len(data)

    def _take(self, n):
        if n <= 0:
            return b""
        return self.module.host_read(n, self.timeout / 1000)

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        data = self._take(n)
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)

    def read(self, nbytes=None):
        data = self._take(1 << 16 if nbytes is None else nbytes)
        return data or None

    def any(self):
        return self.module.host_pending()

    def flush(self):
        pass

    def txdone(self):
        return True
