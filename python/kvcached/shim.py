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
"""

import argparse
import os
import site
import sys
import sysconfig

PTH_NAME = "kvcached-mooncake-shim.pth"


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


def install(site_dir):
    os.makedirs(site_dir, exist_ok=True)
    target = os.path.join(site_dir, PTH_NAME)
    with open(target, "w") as f:
        f.write(_pth_line(shim_dir()))
    return target


def uninstall(site_dir):
    target = os.path.join(site_dir, PTH_NAME)
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
        return 0
    # status: what `import mooncake.store` gives in this interpreter.
    try:
        import mooncake.store as ms
        origin = getattr(ms, "__file__", "?")
        ours = getattr(ms, "KVCACHED_SHIM", False)
        print(f"mooncake.store -> {origin} ({'kvcached shim' if ours else 'not kvcached'})")
    except ImportError as e:
        print(f"mooncake.store cannot be imported: {e}")
    print(f"{os.path.join(site_dir, PTH_NAME)}: "
          f"{'present' if os.path.exists(os.path.join(site_dir, PTH_NAME)) else 'absent'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
