"""Downloading a weights file: streamed, hashed, never left half-written
(sr_jax.utils.io_utils.download_file).

Tests replace `download_file` (or urllib's `urlopen`) to serve files
without a network.
"""
from sr_jax.utils import io_utils

# What a failed download raises: offline, DNS, HTTP errors, a reset socket.
DOWNLOAD_ERRORS = io_utils.DOWNLOAD_ERRORS
# Streams url into f; returns the SHA-256 hex digest of what was written.
download_file = io_utils.download_file


# A fresh file path, deleted on exit whatever happens, so a failed or
# interrupted fetch leaves nothing behind.
temporary_path = io_utils.temporary_path
