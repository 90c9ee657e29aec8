"""``python -m devstack`` (``make run``)."""

import logging
import os
import sys

from devstack.app import main

code = main()
# Everything is stopped and the ready file removed; skip interpreter finalization, which spends seconds
# tearing down the embedded AWS's in-memory state.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
