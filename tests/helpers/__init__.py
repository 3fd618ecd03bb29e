"""Helpers the tests share: plain modules, not tests (fixtures are in the
conftest.py files)."""
