"""Load tests for proctorhub: run by hand, never by pytest (see load_tests/README.md)."""
