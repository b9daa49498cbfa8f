"""I/O at the edges: the only code that touches processes, files and the kernel.

Starting plugin processes (``spawn``), the record store on disk with its locks
(``recordstore``), and the read-only probes of network state (``probes``).

Rule: the edges import the core (and ``errors``, ``netns``), never
``drivers``, ``tools``, ``runtime`` or ``cli``; the core never imports them.
"""
