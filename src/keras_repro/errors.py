"""Errors whose message tells the user everything: shown without a traceback."""


class ReproError(Exception):
    """An expected failure: bad input, unreachable data, or runs that differ."""
