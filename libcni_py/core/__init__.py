"""The pure core: what CNI means, computed without touching the system.

Values, names, versions, Go-exact JSON, the shipped JSON Schemas, network
configurations, results, each plugin's stdin and environment, the cache
record format, decoding a plugin's answer; what an operation is given
(``inputs``) and reports (``reports``); the effects (``effects``, typed);
and the plans (``operations``) -- the operations written once as
generators that yield effects for a driver to perform.

Rule: the core is pure.  Nothing here imports from ``edges``, ``drivers``,
``tools``, ``runtime`` or ``cli``, nor trio, pyroute2 or subprocess; what a
plan needs from the world it asks for as an effect.  Three exceptions are
left until they move to the edges: ``netconf`` reads conf files,
``plugin_call`` looks plugin binaries up on disk, ``schema`` reads the
shipped schemas (``tests/unit/test_core_imports.py`` checks both rules).
"""
