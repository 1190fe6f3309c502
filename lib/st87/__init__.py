# st87: MicroPython driver for the ST87MXX NB-IoT module's TLS/DTLS secure sockets.
# MIT license; Copyright (c) 2026 st87 developers

from .errors import ATError, ATTimeout, ModemError, ModemRebooted
from .modem import Modem
from .sockets import TCP, UDP

__version__ = "0.1.0"
