#!/usr/bin/env python3
"""Who did what, from an ``strace -f`` log: every program started (a CNI
plugin with its CNI_COMMAND), indented under the program that started it,
and the files each one wrote, renamed, created or removed, in order.

A CNI plugin is a program run from a CNI_PATH directory with CNI_COMMAND
set.  Record the log with (``-y`` makes strace print the path behind each fd)::

    strace -f -qq -y -s 512 -v -e signal=none \\
        -e trace=%process,openat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat \\
        -o add.strace  cnitool add cbr0 /var/run/netns/pod1

then ``calltree.py add.strace [--root DIR]`` (paths under DIR are shown
relative to it; writes to /proc/sys are shown as sysctls).  Repeated runs
of the same helper (iptables...) by one process are folded into one line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

CALL = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+= (-?\d+)(?:<([^>]*)>)?")
RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
DIRFD = re.compile(r"^(?:AT_FDCWD|-?\d+)(?:<([^>]*)>)?$")
SPAWNS = ("clone", "clone3", "fork", "vfork")


def unquote(text: str) -> str:
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def split_args(args: str) -> list[str]:
    """The top-level, comma-separated arguments of one call."""
    out: list[str] = []
    depth, quoted, escaped, start = 0, False, False, 0
    for i, ch in enumerate(args):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(args[start:i].strip())
            start = i + 1
    out.append(args[start:].strip())
    return out


def path_of(dir_arg: str, name_arg: str) -> str:
    match = STRING.match(name_arg)
    name = unquote(match.group(1)) if match else name_arg
    if name.startswith("/"):
        return name
    fd = DIRFD.match(dir_arg)
    return os.path.normpath(os.path.join(fd.group(1) if fd and fd.group(1) else ".", name))


def calls(log: str) -> list[tuple[int, str, list[str], int, str | None]]:
    """(pid, call, args, result, path behind the result) of every completed
    call, with split "unfinished ... resumed" pairs joined."""
    pending: dict[int, str] = {}
    out = []
    with open(log, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            line = raw.rstrip("\n")
            if line.endswith(" <unfinished ...>"):
                pid = int(line.split()[0])
                pending[pid] = line.removesuffix(" <unfinished ...>")
                continue
            resumed = RESUMED.match(line)
            if resumed:
                line = pending.pop(int(resumed[1]), "") + resumed[3]
            match = CALL.match(line)
            if match:
                out.append((int(match[1]), match[2], split_args(match[3]), int(match[4]), match[5]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("log", help="an strace -f log recorded as shown above")
    parser.add_argument("--root", help="show paths under this directory relative to it")
    opts = parser.parse_args()
    root = os.path.normpath(opts.root) + "/" if opts.root else None
    events = calls(opts.log)

    parent: dict[int, int] = {}
    for pid, call, _, ret, _ in events:
        if call in SPAWNS and ret > 0:
            parent[ret] = pid
    name: dict[int, str] = {}  # pid -> program, once it has exec'd
    depth: dict[int, int] = {}
    lines: list[list[object]] = []  # [depth, text, fold key, count]
    last_fold: dict[tuple[int, str], list[object]] = {}

    def owner(pid: int) -> int | None:
        """The nearest process (itself or an ancestor) that has exec'd."""
        seen: int | None = pid
        while seen is not None and seen not in name:
            seen = parent.get(seen)
        return seen

    def show(path: str) -> str:
        if path.startswith("/proc/sys/"):
            return "sysctl " + path.removeprefix("/proc/sys/").replace("/", ".")
        return path.removeprefix(root) if root and path.startswith(root) else path

    def emit(pid: int, text: str) -> None:
        who = owner(pid)
        if who is None:
            return
        lines.append([depth[who] + 1, f"{name[who]}: {text}", None, 1])

    for pid, call, args, ret, ret_path in events:
        if ret < 0:
            continue
        if call == "execve":
            path = unquote(STRING.match(args[0]).group(1))  # type: ignore[union-attr]
            argv = [unquote(s) for s in STRING.findall(args[1])]
            env = [unquote(s) for s in STRING.findall(args[2])] if len(args) > 2 else []
            interpreter = os.path.basename(path).startswith("python")
            if pid in name and interpreter:
                continue  # the #! interpreter of a script: still the same program
            program = os.path.basename(argv[1] if interpreter and len(argv) > 1 else path).removesuffix(".py")
            rest = argv[2:] if interpreter else argv[1:]
            starter = owner(parent.get(pid, -1))
            name[pid] = program
            depth[pid] = depth[starter] + 1 if starter is not None else 0
            # a CNI plugin: a program from a CNI_PATH directory, run with CNI_COMMAND
            command = next((e.split("=", 1)[1] for e in env if e.startswith("CNI_COMMAND=")), "")
            cni_path = next((e.split("=", 1)[1] for e in env if e.startswith("CNI_PATH=")), "")
            if command and os.path.dirname(path) in [os.path.normpath(d) for d in cni_path.split(":") if d]:
                lines.append([depth[pid], f"{program} {command}", None, 1])
                continue
            key = (starter if starter is not None else -1, program)
            if key in last_fold and starter is not None:
                last_fold[key][3] += 1  # type: ignore[operator]
                continue
            entry: list[object] = [depth[pid], " ".join([program, *rest]), key, 1]
            last_fold[key] = entry
            lines.append(entry)
        elif call == "openat":
            flags = args[2] if len(args) > 2 else ""
            if any(flag in flags for flag in ("O_WRONLY", "O_RDWR", "O_CREAT")):
                path = ret_path or path_of(args[0], args[1])
                if path != "/dev/null":
                    emit(pid, f"writes {show(path)}")
        elif call in ("mkdir", "mkdirat"):
            path = path_of("AT_FDCWD", args[0]) if call == "mkdir" else path_of(args[0], args[1])
            emit(pid, f"creates {show(path)}/")
        elif call in ("rename", "renameat", "renameat2"):
            if call == "rename":
                src, dst = path_of("AT_FDCWD", args[0]), path_of("AT_FDCWD", args[1])
            else:
                src, dst = path_of(args[0], args[1]), path_of(args[2], args[3])
            emit(pid, f"renames {show(src)} -> {show(dst)}")
        elif call in ("unlink", "unlinkat"):
            path = path_of("AT_FDCWD", args[0]) if call == "unlink" else path_of(args[0], args[1])
            emit(pid, f"removes {show(path)}")

    for level, text, _, count in lines:
        suffix = f"  (and {count - 1} more runs by the same process)" if count != 1 else ""  # type: ignore[operator]
        sys.stdout.write("  " * int(level) + str(text) + suffix + "\n")  # type: ignore[call-overload]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
