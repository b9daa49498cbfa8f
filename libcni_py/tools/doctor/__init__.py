"""``cnitool doctor``: what is wrong on this node, which program made it, and the fix.

A node drifts into states no single operation shows: host-local
reservations whose container is long gone (until "no IP addresses available
in range set"), records whose namespace is gone, host veths whose pod
namespace can no longer be reached, iptables chains of deleted containers,
a ``cni0`` whose address no longer matches Flannel's subnet.env, conf files
that a runtime cannot load.  The doctor looks at the node as it is and says
each of these with its cause, the program that left it (where it can be
told) and the fix.

Three parts, so that the judgement can be tested without a node:

* :mod:`.facts` -- the value types: what was read (:class:`.facts.Facts`)
  and what was found (:class:`.facts.Finding`);
* :mod:`.analyse` -- pure: facts in, findings out, with GC's rules of
  liveness and ownership (:func:`libcni_py.core.ownership.judge`);
* :mod:`.gather` -- the I/O that reads the node into facts, and
  :mod:`.repair` -- ``--fix``: it acts only on findings proven dead, and
  deletes dead attachments through GC itself (:meth:`libcni_py.CNI.gc`).
"""
