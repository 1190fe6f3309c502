# The module's Internal Trusted Storage (ITS): TLS credentials grouped by security profile.
#
# Two copies: `ram`, what AT commands read and write, and the committed copy, what survives a
# reboot. AT#RESET=1 commits (and persists to the JSON state file when there is one); every
# reboot reloads `ram` from the committed copy, so uncommitted writes are lost.
#
# File budget (application note 3.3): each profile that holds anything costs one header
# file, each credential one more file, and the total is capped (10 on the default firmware).

import copy
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("st87sim.its")

# Element kinds. One element of each kind per profile.
PSK = "psk"  # the pre-shared key: {"data": bytes, "storage": 1..4}
PSK_IDENTITY = "psk_identity"  # {"data": bytes}
CA = "ca"  # CA root certificate: {"data": DER}
CERT = "cert"  # client certificate: {"data": DER}
# EC private key, imported or generated: {"data": the 32-byte scalar, "curve": 0 secp256r1 or
# 1 brainpoolP256r1, "storage": 1..4}. The state file keeps the scalar: it stands in for the
# module's secure storage.
KEY = "key"
KINDS = (PSK, PSK_IDENTITY, CA, CERT, KEY)

# Elements that can never be read back; the store never logs their data either.
SECRET_KINDS = frozenset((PSK, KEY))

# A PSK and a private key share the profile's key slot: a profile holds one or the other, and
# adding the second is "element already exists" [model].
_SLOT = {PSK: "key slot", KEY: "key slot"}

_FORMAT = "st87sim-its/1"

# Result codes (PROTOCOL.md section 6).
ERR_FULL = 20
ERR_EXISTS = 1301
ERR_MISSING = 1302


class ItsError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class CredentialStore:
    def __init__(self, path=None, max_files=10):
        self.path = Path(path) if path is not None else None
        self.max_files = max_files
        self._committed = self._read_state()
        self.ram = copy.deepcopy(self._committed)

    # Files the given store (default: RAM) occupies in the ITS.
    def file_count(self, profiles=None):
        profiles = self.ram if profiles is None else profiles
        return sum(1 + len(elements) for elements in profiles.values() if elements)

    def sec_ids(self):
        return sorted(sec for sec, elements in self.ram.items() if elements)

    def get(self, sec, kind):
        return self.ram.get(sec, {}).get(kind)

    # Store one element; raises ItsError(1301) when it exists, ItsError(20) when the ITS has
    # no room for it (and then stores nothing).
    def add(self, sec, kind, element):
        elements = self.ram.get(sec, {})
        slot = _SLOT.get(kind, kind)
        if any(_SLOT.get(other, other) == slot for other in elements):
            raise ItsError(ERR_EXISTS)
        needed = 1 if elements else 2  # a new profile also needs its header file
        if self.file_count() + needed > self.max_files:
            log.info("ITS full: %d files, profile %d %s refused", self.file_count(), sec, kind)
            raise ItsError(ERR_FULL)
        self.ram.setdefault(sec, {})[kind] = dict(element)
        log.info("ITS: profile %d %s stored (%d bytes)", sec, kind, len(element["data"]))

    # Delete the listed kinds of a profile; raises ItsError(1302) when none of them exists.
    def delete(self, sec, kinds):
        elements = self.ram.get(sec, {})
        gone = [kind for kind in kinds if elements.pop(kind, None) is not None]
        if not elements:
            self.ram.pop(sec, None)
        if not gone:
            raise ItsError(ERR_MISSING)
        log.info("ITS: profile %d %s deleted", sec, ",".join(gone))

    def commit(self):
        self._committed = copy.deepcopy(self.ram)
        if self.path is not None:
            self._write_state()
        log.info("ITS committed: %d files", self.file_count(self._committed))

    # What a reboot does: RAM holds the committed store again.
    def reload(self):
        self.ram = copy.deepcopy(self._committed)

    def _read_state(self):
        if self.path is None or not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text())
        if raw.get("format") != _FORMAT:
            raise ValueError(f"{self.path}: not an st87-sim ITS state file")
        profiles = {}
        for sec, elements in raw["profiles"].items():
            profiles[int(sec)] = {
                kind: {**element, "data": bytes.fromhex(element["data"])}
                for kind, element in elements.items()
            }
        return profiles

    def _write_state(self):
        profiles = {
            str(sec): {
                kind: {**element, "data": element["data"].hex()}
                for kind, element in elements.items()
            }
            for sec, elements in sorted(self._committed.items())
        }
        text = json.dumps({"format": _FORMAT, "profiles": profiles}, indent=1, sort_keys=True)
        # Write then rename, so that a crash never leaves half a state file; the file holds
        # keys, so only its owner may read it.
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, self.path)
