"""Tools built on the core: renderers of traces (:mod:`.trace_html`,
:mod:`.trace_compact`).  Each is imported only by the command that uses it."""
