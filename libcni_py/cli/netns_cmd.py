"""``cnitool netns add|del|ls``: named network namespaces.

The namespaces are ``ip netns``'s (``/var/run/netns/<name>``), so the two
tools see each other's.  ``add`` prints the new namespace's path, ready to be
handed to ``cnitool add NETWORK PATH``.
"""

from __future__ import annotations

from ._argv import Command, Opt, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .main import Context

__all__ = ["run", "spec"]

SPEC = Command(
    "netns",
    ("add|del|ls", "[NAME...]"),
    "Create, delete or list named network namespaces (the same ones 'ip netns' manages).",
    (
        Opt("--exist-ok", dest="exist_ok", help="add: a namespace of that name already existing is fine"),
        Opt("--missing-ok", dest="missing_ok", help="del: a namespace that does not exist is fine"),
    ),
    description="  add NAME     create /var/run/netns/NAME and print its path\n"
    "  del NAME...  delete namespaces (processes still inside keep theirs alive, as with ip netns del);\n"
    "               also removes the empty file a namespace whose mount went away leaves behind\n"
    "  ls           list the named namespaces, one per line",
)


def spec(command: str) -> Command:
    """The declaration of ``netns``."""
    return SPEC


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run ``cnitool netns ...``."""
    from .. import netns

    if not positionals:
        raise UsageError("expected add, del or ls")
    verb, names = positionals[0], positionals[1:]
    if verb == "ls":
        if names:
            raise UsageError("ls takes no NAME")
        for name in netns.list_names():
            print(name)
        return 0
    if verb == "add":
        if len(names) != 1:
            raise UsageError("add takes one NAME")
        print(netns.create(names[0], exist_ok=bool(values.get("exist_ok"))))
        return 0
    if verb in ("del", "delete"):
        if not names:
            raise UsageError("del takes one NAME or more")
        for name in names:
            path = netns.path_for(name)
            stale = not netns.is_netns(path) and netns.is_stale_file(path)
            netns.delete(name, missing_ok=bool(values.get("missing_ok")))
            if stale:
                ctx.notice(f"{path} was a stale namespace file (its namespace was no longer mounted on it): removed")
        return 0
    raise UsageError(f"unknown netns command {verb!r} (expected add, del or ls)")
