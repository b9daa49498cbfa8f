"""Tracing: every step of a plugin call made visible.

``tracer`` observes each effect a driver performs (and renders the text and
JSON traces); ``proc`` finds out, as root, which processes did what.

Rule: as for all tools -- loaded only when a trace is asked for.
"""
