"""The runtime's defaults, in one place: the library, the runtime layer and
the CLI (its flags, their help) all take them from here.

Go's ``cnitool`` and libcni use the same directories.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_CONF_DIR",
    "DEFAULT_PLUGIN_PATH",
    "DEFAULT_TIMEOUT",
    "KNOWN_PLUGIN_DIRS",
    "MAX_TIMEOUT",
]

#: Where network configuration files are read from (``NETCONFPATH``).
DEFAULT_CONF_DIR = "/etc/cni/net.d"

#: Where plugins are looked for when no path is given (``CNI_PATH``).
DEFAULT_PLUGIN_PATH = ("/opt/cni/bin",)

#: Where plugins are installed on common systems: upstream's tarball,
#: containerd's ``bin_dir`` and CRI-O's ``plugin_dirs`` default to
#: ``/opt/cni/bin``; Debian's containernetworking-plugins installs to
#: ``/usr/lib/cni``, Fedora's and RHEL's to ``/usr/libexec/cni``; podman
#: searches all of these.  Only read, to say where a missing plugin is.
KNOWN_PLUGIN_DIRS = ("/opt/cni/bin", "/usr/libexec/cni", "/usr/lib/cni", "/usr/local/libexec/cni", "/usr/local/lib/cni")

#: The result cache (Go's ``CacheDir``; ``CNI_CACHE_DIR``).
DEFAULT_CACHE_DIR = "/var/lib/cni"

#: Seconds one plugin call may take before it and every process it started are
#: killed; also the longest wait for a lock another operation holds.
DEFAULT_TIMEOUT = 300.0

#: The longest per-call deadline accepted (a day): a plugin call that takes
#: longer is hung.  ``None`` is the way to ask for no deadline at all.
MAX_TIMEOUT = 86400.0
