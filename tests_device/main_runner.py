# Runs one device test module: micropython main_runner.py test_session
#
# micropython-unittest ends with sys.exit(<bool>), which MicroPython prints and turns into exit
# code 1 even on success; this maps it to 0 or 1.

import sys
import unittest

module = __import__(sys.argv[1])
try:
    unittest.main(module)
except SystemExit as e:
    sys.exit(1 if e.args and e.args[0] else 0)
