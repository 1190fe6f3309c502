# Fetch micropython-unittest into a folder for MICROPYPATH.
#
# The PyPI package is an old sdist that pip cannot install (it was made for upip), so this does
# what upip did: ask the package index's JSON API for the release, download the tarball, check
# its SHA-256 against the index, and extract unittest.py.

import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request

INDEX = "https://pypi.org/pypi/micropython-unittest/json"


def main():
    dest = sys.argv[1]
    target = os.path.join(dest, "unittest.py")
    if os.path.exists(target):
        return
    with urllib.request.urlopen(INDEX, timeout=60) as r:
        meta = json.load(r)
    sdist = next(u for u in meta["urls"] if u["packagetype"] == "sdist")
    with urllib.request.urlopen(sdist["url"], timeout=60) as r:
        data = r.read()
    if hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
        sys.exit("micropython-unittest: checksum mismatch")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/unittest.py"))
        source = tar.extractfile(member).read()
    os.makedirs(dest, exist_ok=True)
    with open(target + ".tmp", "wb") as f:
        f.write(source)
    os.replace(target + ".tmp", target)
    print(f"micropython-unittest {meta['info']['version']} -> {target}")


if __name__ == "__main__":
    main()
