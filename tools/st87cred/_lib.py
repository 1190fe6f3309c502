# st87-cred builds on the driver's own checks (lib/st87), so that the lines it prints are the
# lines the driver sends. An installed st87 wins; otherwise the repository's lib/ is used.

import sys
from pathlib import Path

try:
    import st87
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))
    import st87

from st87 import der, tls

__all__ = ["der", "st87", "tls"]
