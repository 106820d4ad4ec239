"""The `clb-direct` command line; see `cli/main.py`."""
