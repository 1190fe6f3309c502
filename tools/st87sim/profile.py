# Firmware profiles: the behaviours that differ between ST87MXX firmware versions (PROTOCOL.md
# section 7), kept as data so that one test can run against several of them.

import dataclasses
import json
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class FirmwareProfile:
    name: str = "default"
    version: str = "ST87M01_3.1.0_SIM"

    # Framing and start-up.
    echo_on_boot: bool = True
    line_cap: int = 1600  # characters, excluding the CR; longer lines get no reply at all
    boot_ms: int = 150  # time during which every command answers +CME ERROR: 1120
    attach_ms: int = 100  # from #SIMST: 1 (or AT+CFUN=1) to the IP context being up

    # Error form: with cmee_text, AT+CMEE=2 gives "+CME ERROR: <text>"; otherwise it is
    # accepted and errors stay numeric.
    cmee_text: bool = False

    # Credentials.
    cfun4_for_credentials: bool = True
    sec_ids: range | tuple = range(16)
    its_files: int = 10
    # TODO: binary_certs: the binary form of AT#TLSCERTADD is refused on every profile for
    # now (creds.py); only firmware 3.1's refusal is known.
    binary_certs: bool = False
    ca_curves: tuple = ("secp256r1", "brainpoolP256r1")  # CA key curves AT#TLSCERTADD takes

    # Sockets.
    ipread_trailer: bytes = b"\r\n\r\nOK\r\n"

    # Power saving: after sleep_hold_s without traffic the module sleeps and the first
    # command it then receives is lost.
    sleep_enabled: bool = False
    sleep_hold_s: float = 10

    # TODO: a latency model (NB-IoT round trips on connect, send and receive) for the
    # benchmarks; zero, as now, stays the default for tests.

    @classmethod
    def named(cls, name):
        try:
            overrides = _NAMED[name]
        except KeyError:
            raise ValueError(f"unknown firmware profile {name!r} (known: {', '.join(_NAMED)})")
        return cls(name=name, **overrides)

    @classmethod
    def from_json(cls, path):
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a firmware profile is a JSON object")
        base = cls.named(data.pop("base", "default"))
        data.setdefault("name", Path(path).stem)
        return base.replace(**data)

    # A name from named() or the path of a JSON file (an object of field overrides, with an
    # optional "base" naming the profile it starts from).
    @classmethod
    def load(cls, name_or_path):
        if name_or_path in _NAMED:
            return cls.named(name_or_path)
        if Path(name_or_path).is_file():
            return cls.from_json(name_or_path)
        raise ValueError(f"no firmware profile or file named {name_or_path!r}")

    # A copy with some fields changed; JSON-friendly values are converted (a string for
    # ipread_trailer, a list for sec_ids or ca_curves).
    def replace(self, **changes):
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - fields
        if unknown:
            raise ValueError(f"unknown firmware profile fields: {', '.join(sorted(unknown))}")
        if isinstance(changes.get("ipread_trailer"), str):
            changes["ipread_trailer"] = changes["ipread_trailer"].encode("latin-1")
        if isinstance(changes.get("sec_ids"), list):
            changes["sec_ids"] = _as_ids(changes["sec_ids"])
        if isinstance(changes.get("ca_curves"), list):
            changes["ca_curves"] = tuple(changes["ca_curves"])
        return dataclasses.replace(self, **changes)


# A list of ids; a contiguous one becomes a range so that listings stay ordered and cheap.
def _as_ids(ids):
    ids = sorted(int(i) for i in ids)
    if ids and ids == list(range(ids[0], ids[-1] + 1)):
        return range(ids[0], ids[-1] + 1)
    return tuple(ids)


# The "other values seen" column of PROTOCOL.md section 7, and a few single-knob variants.
_NAMED = {
    "default": {},
    "fw31-alt": {
        "version": "ST87M01_3.1.2_SIM",
        "echo_on_boot": False,
        "cfun4_for_credentials": False,
        "line_cap": 2048,
        "sec_ids": range(1, 10),
        "binary_certs": True,
        "ca_curves": ("secp256r1", "brainpoolP256r1", "secp384r1"),
        "ipread_trailer": b"\r\nOK\r\n",
        "cmee_text": True,
        "sleep_enabled": True,
        "sleep_hold_s": 10,
    },
    "sleepy": {"sleep_enabled": True, "sleep_hold_s": 10},
    "fast": {"boot_ms": 20, "attach_ms": 10},
}
