# st87: exception classes.
# MIT license; Copyright (c) 2026 st87 developers

# The hierarchy is kept small on purpose: callers catch ModemError for anything the module or
# the link did, ATError when they care about the module's own error code, and ValueError (a
# builtin) for bad arguments, which is always raised before anything is written to the UART.
#
# No exception message ever carries a credential: messages name the command (AT#TLSKEYADD),
# never the line that was sent.


class ModemError(Exception):
    pass


# The module answered ERROR or +CME ERROR. `code` is the CME code as an int, or None for a bare
# "ERROR" / "+CME ERROR" (the ST87 answers bare +CME ERROR on several TLS commands).
class ATError(ModemError):
    def __init__(self, command, code=None):
        self.command = command
        self.code = code
        if code is None:
            super().__init__("{} failed".format(command))
        else:
            super().__init__("{} failed: +CME ERROR: {}".format(command, code))


# No final result before the deadline. MicroPython has no builtin TimeoutError, so this one is
# ours; it is also what a lost first command after sleep looks like.
class ATTimeout(ModemError):
    pass


# The module printed a boot URC (#REBOOT_*) while a command was in flight, or a socket was
# used after the module rebooted under it.
class ModemRebooted(ModemError):
    pass
