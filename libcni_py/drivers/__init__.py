"""Drivers: they run the core's plans, performing each effect a plan yields.

``handlers`` declares one abstract method per effect (a driver that forgets
one is a mypy error); ``base`` holds the one stepping loop and every core
effect's handler, over the few operations that wait, which ``blocking``
(the one-shot CLI and :class:`libcni_py.CNI`) does with plain calls and
``async_trio`` (:class:`libcni_py.AsyncCNI`) with trio.  ``dryrun`` records
the effects and touches nothing (``cnitool explain``); ``scripted`` answers
them from a script (tests of plans); ``describe`` says what each effect is,
for traces and dry runs.

Rule: drivers import the core and the edges, never ``tools``, ``runtime`` or
``cli``: a tracer is handed to a driver, not imported by it.
"""
