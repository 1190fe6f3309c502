# st87-sim: a CPython emulator of the ST87MXX NB-IoT module's AT interface (PROTOCOL.md).

from .module import Module, SocketInfo
from .profile import FirmwareProfile
from .uart import FakeUART

__all__ = ["FakeUART", "FirmwareProfile", "Module", "SocketInfo"]
