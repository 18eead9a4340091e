"""The opt-in import shim: makes `from mooncake.store import
MooncakeDistributedStore` load kvcached's class in one Python environment, so
SGLang's `--hicache-storage-backend mooncake` (and vLLM, LMCache) run on a
kvcached pool unchanged.

    python3 -m kvcached.shim install [--user | --site DIR]
    python3 -m kvcached.shim uninstall [--user | --site DIR]
    python3 -m kvcached.shim status
    python3 -m kvcached.shim path      # the directory to put on PYTHONPATH instead

`install` writes kvcached-mooncake-shim.pth into the environment's
site-packages (or DIR); at start-up Python then puts the shim's directory,
kvcached/_shim, at the front of sys.path. Its `mooncake` package shadows a
real Mooncake installation: `mooncake.store` is kvcached's in every process
of that environment until `uninstall`. Other submodules (mooncake.engine)
still come from a real Mooncake installation, if there is one.
Without installing anything, PYTHONPATH=$(python3 -m kvcached.shim path)
has the same effect for the processes that inherit it.

The kvcached-mooncake-compat package installs the same file, for every
process, beside the kvcached package (PACKAGE_HEADER is its first line).
`status` reports it; `uninstall` refuses to remove it and `install` leaves
it alone: the package owns it, and removing the package undoes it.
"""

import argparse
import os
import site
import sys
import sysconfig

PTH_NAME = "kvcached-mooncake-shim.pth"
PACKAGE = "kvcached-mooncake-compat"
# The first line of the package's .pth (packaging/kvcached-mooncake-shim.pth.in;
# the packaging/contents test compares it with package_pth_text()). site.py
# skips lines that start with "#".
PACKAGE_HEADER = f"# {PTH_NAME} of the {PACKAGE} package: remove the package to undo\n"


def shim_dir():
    """The directory holding the stand-in `mooncake` package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_shim")


def _site_dir(args):
    if args.site:
        return args.site
    if args.user:
        return site.getusersitepackages()
    return sysconfig.get_path("purelib")


def _pth_line(path):
    # A .pth line starting with "import" is executed by site.py: insert at the
    # front, so the shim wins over a real Mooncake in site-packages.
    return (f"import sys; _p = {path!r}; "
            f"_p in sys.path or sys.path.insert(0, _p); del _p\n")


def package_pth_text(path):
    """The text of the .pth the kvcached-mooncake-compat package installs,
    for the shim directory `path`."""
    return PACKAGE_HEADER + _pth_line(path)


def package_owned(pth):
    """True when the file `pth` is the kvcached-mooncake-compat package's."""
    try:
        with open(pth) as f:
            return f.readline() == PACKAGE_HEADER
    except OSError:
        return False


def package_pth():
    """The package's .pth beside this kvcached package, or None without it."""
    pth = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PTH_NAME)
    return pth if package_owned(pth) else None


def install(site_dir):
    """Writes the .pth into site_dir and returns its path; None when the
    package's file is there already (left as it is)."""
    os.makedirs(site_dir, exist_ok=True)
    target = os.path.join(site_dir, PTH_NAME)
    if package_owned(target):
        return None
    with open(target, "w") as f:
        f.write(_pth_line(shim_dir()))
    return target


def uninstall(site_dir):
    """Removes site_dir's .pth and returns its path; None when there is
    none. PermissionError for the package's file: only removing the
    package may remove it."""
    target = os.path.join(site_dir, PTH_NAME)
    if package_owned(target):
        raise PermissionError(f"it is the {PACKAGE} package's file: remove that package instead")
    if os.path.exists(target):
        os.remove(target)
        return target
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m kvcached.shim",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["install", "uninstall", "status", "path"])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="the user site-packages directory")
    where.add_argument("--site", metavar="DIR", help="this site-packages directory")
    args = parser.parse_args(argv)

    if args.action == "path":
        print(shim_dir())
        return 0
    site_dir = _site_dir(args)
    if args.action == "install":
        try:
            target = install(site_dir)
        except OSError as e:
            print(f"cannot write {os.path.join(site_dir, PTH_NAME)}: {e}", file=sys.stderr)
            return 1
        if target is None:
            print(f"{os.path.join(site_dir, PTH_NAME)} is there already, from the {PACKAGE} "
                  f"package: 'mooncake.store' loads kvcached in this environment")
            return 0
        print(f"installed {target}: 'mooncake.store' now loads kvcached in this environment "
              f"(undo: python3 -m kvcached.shim uninstall"
              f"{' --user' if args.user else ''}{' --site ' + args.site if args.site else ''})")
        return 0
    if args.action == "uninstall":
        try:
            target = uninstall(site_dir)
        except OSError as e:
            print(f"cannot remove {os.path.join(site_dir, PTH_NAME)}: {e}", file=sys.stderr)
            return 1
        print(f"removed {target}" if target else f"no {PTH_NAME} in {site_dir}")
        pkg = package_pth()
        if pkg:
            print(f"{pkg} stays: it is the {PACKAGE} package's (remove that package to undo it)")
        return 0
    # status: what `import mooncake.store` gives in this interpreter.
    try:
        import mooncake.store as ms
        origin = getattr(ms, "__file__", "?")
        ours = getattr(ms, "KVCACHED_SHIM", False)
        print(f"mooncake.store -> {origin} ({'kvcached shim' if ours else 'not kvcached'})")
    except ImportError as e:
        print(f"mooncake.store cannot be imported: {e}")
    # The package's file too, which is not in this site directory (the
    # default is /usr/local's): it applies to every process all the same.
    paths = [os.path.join(site_dir, PTH_NAME)]
    if package_pth() and package_pth() not in paths:
        paths.append(package_pth())
    for pth in paths:
        state = "present" if os.path.exists(pth) else "absent"
        if package_owned(pth):
            state += f" (the {PACKAGE} package's: remove that package to undo)"
        print(f"{pth}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
