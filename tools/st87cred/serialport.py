# A machine.UART look-alike over pyserial, for the driver on CPython: a USB-serial adapter
# wired to the module, or the pty that `st87-sim --pty` prints.
#
# The contract the driver relies on (as on MicroPython): write(buf); readinto(buf[, nbytes])
# waits up to `timeout` ms for the first byte, then returns what has arrived without waiting
# for more, or None when nothing came; any() says whether bytes are waiting.

import serial

from ._lib import st87


class SerialUART:
    def __init__(self, port, baudrate=115200, timeout_ms=20):
        try:
            # exclusive: two tools talking to one module at once garble each other's replies.
            self._port = serial.Serial(
                port, baudrate, timeout=timeout_ms / 1000, write_timeout=5, exclusive=True
            )
        except (serial.SerialException, ValueError) as exc:
            raise st87.ModemError("cannot open {}: {}".format(port, _reason(exc))) from None
        self.timeout = timeout_ms

    def write(self, buf):
        try:
            return self._port.write(bytes(buf))
        except serial.SerialException as exc:
            raise st87.ModemError("serial write failed: {}".format(_reason(exc))) from None

    def readinto(self, buf, nbytes=None):
        mv = memoryview(buf)
        if nbytes is not None:
            mv = mv[:nbytes]
        if not len(mv):
            return None
        try:
            # One blocking byte (up to the timeout), then whatever else is already waiting:
            # a full-size read would sit out the whole timeout on every short reply.
            first = self._port.read(1)
            if not first:
                return None
            mv[0] = first[0]
            more = min(len(mv) - 1, self._port.in_waiting)
            rest = self._port.read(more) if more else b""
        except serial.SerialException as exc:
            raise st87.ModemError("serial read failed: {}".format(_reason(exc))) from None
        mv[1 : 1 + len(rest)] = rest
        return 1 + len(rest)

    def any(self):
        try:
            return self._port.in_waiting
        except (serial.SerialException, OSError):
            return 0

    def close(self):
        self._port.close()


def _reason(exc):
    # pyserial wraps the OSError text in "[Errno 2] could not open port ...: ...".
    return str(exc).strip() or type(exc).__name__
