"""``dj``: an interactive Python console with the library imported as ``dj``.

``python -m dj_dagster.cli [-u USER] [-p PASSWORD] [--host HOST[:PORT]] [-s SCHEMA:ALIAS ...]``
sets the credentials given in ``dj.config`` and loads each schema as a virtual module
named by its alias. ``-V`` prints the version.
"""

from __future__ import annotations

import argparse
import code
from typing import Sequence


def cli(args: Sequence[str] | None = None) -> None:
    """Run the console; ``args`` as on the command line (default: ``sys.argv[1:]``).
    ``--help`` and ``--version`` print and exit with SystemExit(0)."""
    import dj_dagster as dj

    parser = argparse.ArgumentParser(
        prog="dj", description="An interactive Python console with dj_dagster imported as dj.",
        epilog="Example: dj --host localhost:3306 -u alice -s lab_subject:subject")
    parser.add_argument("-V", "--version", action="version", version=f"{dj.__name__} {dj.__version__}")
    parser.add_argument("-u", "--user", help="database user (default: dj.config)")
    parser.add_argument("-p", "--password", help="database password (default: dj.config)")
    parser.add_argument("--host", help="database host, optionally host:port (default: dj.config)")
    parser.add_argument("-s", "--schemas", nargs="+", metavar="SCHEMA:ALIAS", default=[],
                        help="schemas to load as virtual modules, each as schema_name:alias")
    options = parser.parse_args(args)

    for name in ("user", "password", "host"):
        value = getattr(options, name)
        if value:
            dj.config[f"database.{name}"] = value
    modules = {}
    for item in options.schemas:
        schema_name, colon, alias = item.partition(":")
        if not colon or not schema_name or not alias:
            parser.error(f"schema {item!r} is not of the form schema_name:alias")
        modules[alias] = dj.virtual_schema(schema_name)

    banner = f"{dj.__name__} {dj.__version__}: the library is imported as dj"
    if modules:
        banner += "\nschemas: " + ", ".join(f"{alias} = {m.schema.database}" for alias, m in modules.items())
    code.interact(banner, local={"dj": dj, **modules})


if __name__ == "__main__":
    cli()
