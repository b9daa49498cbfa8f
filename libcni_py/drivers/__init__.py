"""Drivers: they run the core's plans, performing each effect a plan yields.

``blocking`` with plain calls (the one-shot CLI and :class:`libcni_py.CNI`),
``async_trio`` with trio (:class:`libcni_py.AsyncCNI`), and ``dryrun``, which
records the effects and touches nothing (``cnitool explain``); ``base`` holds
what they share.

Rule: drivers import the core and the edges, never ``tools``, ``runtime`` or
``cli``: a tracer is handed to a driver, not imported by it.
"""
