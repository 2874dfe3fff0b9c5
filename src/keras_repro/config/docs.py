"""config.yaml and the configuration table of docs/configuration.md, generated from the schema.

``keras-repro-config update`` rewrites both, ``check`` fails when either disagrees with the
schema (a test runs it). Documentation only: no rule runs this module, so an edit to it
reruns nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from keras_repro.config.schema import ConfigError, defaults, load_schema

CONFIG_DOC = "docs/configuration.md"
TABLE_START = "<!-- config table: generated from the schema by `keras-repro-config update` -->"
TABLE_END = "<!-- end of config table -->"


def _described_keys(
    schema: dict[str, Any], prefix: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, subschema in schema.get("properties", {}).items():
        yield prefix + key, subschema
        yield from _described_keys(subschema, f"{prefix}{key}.")


def _comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(
        " ".join(text.split()), 96, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# "
    )


def _inline(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("\n...\n").strip()
    )


def render_config_yaml(schema: dict[str, Any] | None = None) -> str:
    """config.yaml: every key with its default, each described by a comment from the schema."""
    schema = schema or load_schema()
    lines = [
        "# The workflow's config with every default; override keys here or with --config.",
        "# Generated from src/keras_repro/config/config.schema.yaml (`keras-repro-config update`),",
        "# which validates every value before a job runs.",
    ]
    for key, subschema in schema["properties"].items():
        lines += ["", *_comment(subschema["description"], "")]
        default = subschema["default"]
        if subschema.get("properties"):
            # Keys that count only when set are listed commented out, with their defaults.
            unset = "# " if subschema.get("x-keys-set-only") else ""
            lines.append(f"{key}: {{}}" if unset else f"{key}:")
            for inner, inner_schema in subschema["properties"].items():
                lines += _comment(inner_schema["description"], "  ")
                lines.append(f"  {unset}{inner}: {_inline(inner_schema['default'])}")
        elif isinstance(default, dict) and default:
            block = yaml.safe_dump({key: default}, sort_keys=False, width=100)
            lines += block.rstrip("\n").splitlines()
        else:
            lines.append(f"{key}: {_inline(default)}")
    return "\n".join(lines) + "\n"


def render_config_table(schema: dict[str, Any] | None = None) -> str:
    schema = schema or load_schema()
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, subschema in _described_keys(schema):
        if subschema.get("properties"):
            continue
        default = subschema.get("default")
        shown = (
            ", ".join(f"`{name}`" for name in default) + " (see `config.yaml`)"
            if isinstance(default, dict) and default
            else f"`{_inline(default)}`"
        )
        meaning = " ".join(subschema["description"].split()).replace("|", "\\|")
        rows.append(f"| `{key}` | {shown} | {meaning} |")
    return "\n".join([TABLE_START, *rows, TABLE_END])


def _with_config_table(doc: str, table: str) -> str:
    start, end = doc.find(TABLE_START), doc.find(TABLE_END)
    if start < 0 or end < start:
        raise ConfigError(
            f"{CONFIG_DOC} has no config table between {TABLE_START!r} and "
            f"{TABLE_END!r}; add both markers where the table belongs"
        )
    return doc[:start] + table + doc[end + len(TABLE_END) :]


def stale_generated_files(root: Path) -> list[Path]:
    """The files under ``root`` (config.yaml, docs/configuration.md) that disagree with the schema."""
    expected = {
        root / "config.yaml": render_config_yaml(),
        root / CONFIG_DOC: _with_config_table(
            (root / CONFIG_DOC).read_text(), render_config_table()
        ),
    }
    return [path for path, text in expected.items() if path.read_text() != text]


def update_generated_files(root: Path) -> list[Path]:
    """Rewrite config.yaml and the docs' config table from the schema; returns what changed."""
    stale = stale_generated_files(root)
    (root / "config.yaml").write_text(render_config_yaml())
    doc = root / CONFIG_DOC
    doc.write_text(_with_config_table(doc.read_text(), render_config_table()))
    return stale


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("update", f"rewrite config.yaml and {CONFIG_DOC}'s table from the schema"),
        ("check", f"exit 1 if config.yaml or {CONFIG_DOC}'s table disagree with the schema"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("root", type=Path, nargs="?", default=Path("."), help="the repo")
    commands.add_parser("defaults", help="print the default config as JSON")
    args = parser.parse_args(argv)
    if args.command == "defaults":
        json.dump(defaults(), sys.stdout, indent=1)
        print()
        return
    try:
        changed = (update_generated_files if args.command == "update" else stale_generated_files)(
            args.root
        )
    except ConfigError as error:
        parser.exit(1, f"error: {error}\n")
    if args.command == "check" and changed:
        parser.exit(
            1,
            f"out of date with the schema: {', '.join(map(str, changed))}; "
            "run keras-repro-config update\n",
        )
    for path in changed:
        print(f"updated {path}")
    if not changed:
        print(f"config.yaml and {CONFIG_DOC} agree with the schema")


if __name__ == "__main__":
    main()
