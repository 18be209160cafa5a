"""The date runs' start-up hook: :mod:`faketime_sleep` (see there). On the path only then."""

import importlib

importlib.import_module("faketime_sleep")  # it replaces time.sleep when imported
