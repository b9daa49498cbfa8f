"""Tracing: every step of a plugin call made visible.

``tracer`` observes each effect a driver performs (and renders the text and
JSON traces); ``proc`` finds out, as root, which processes did what (its
parts: ``proc_events``, ``fanotify_events``, ``net_events`` decode the kernel's
events, ``proc_tree`` builds the process tree, ``attribution`` says who made a
change, ``filewatch`` and ``reader`` do the kernel I/O, ``observer`` watches
one traced step).

Rule: as for all tools -- loaded only when a trace is asked for.
"""
