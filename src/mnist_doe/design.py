"""Apply a ready-made design to params.yaml: `python -m mnist_doe.design designs/seed-000.yaml`.

Each top-level section of the design file replaces the section of the same name in
params.yaml as a whole; the other sections, and the comments around them, stay as they
are. The result is checked like any params.yaml before it is written.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

from .common import files, params
from .common.errors import run_stage
from .common.words import plural

SECTION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):")


def _sections(text: str) -> list[tuple[str | None, list[str]]]:
    """Split YAML text into (top-level key, its lines); comment lines go with what follows."""
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    pending: list[str] = []
    for line in text.splitlines(keepends=True):
        match = SECTION.match(line)
        if match:
            blocks.append((match.group(1), pending + [line]))
            pending = []
        elif line.startswith("#") or not line.strip():
            pending.append(line)
        else:
            blocks[-1][1].extend(pending + [line])
            pending = []
    blocks[-1][1].extend(pending)
    return blocks


def _dump(key: str, value) -> str:
    """A section in block style; each design cell on one line, as params.yaml writes them."""
    if key == "doe" and isinstance(value, dict) and isinstance(value.get("cells"), dict):
        rest = {k: v for k, v in value.items() if k != "cells"}
        lines = ["doe:\n"]
        if rest:  # the other doe keys (e.g. ensemble) first, as params.yaml has them, indented under doe
            lines += [f"  {line}\n" for line in yaml.safe_dump(rest, sort_keys=False).splitlines()]
        lines.append("  cells:\n")
        for name, cell in value["cells"].items():
            flow = yaml.safe_dump(cell, default_flow_style=True, sort_keys=False, width=1000).strip()
            lines.append(f"    {name}: {flow}\n")
        return "".join(lines)
    return yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False, width=100)


def apply(params_text: str, design: dict) -> str:
    """params.yaml text with each section of `design` replaced (or appended)."""
    blocks = _sections(params_text)
    out, used = [], set()
    for key, lines in blocks:
        if key in design:
            header_at = next(i for i, line in enumerate(lines) if SECTION.match(line))
            out.extend(lines[:header_at])  # the comments above the section stay
            out.append(_dump(key, design[key]))
            used.add(key)
        else:
            out.extend(lines)
    for key in design:
        if key not in used:
            out.append("\n" + _dump(key, design[key]))
    return "".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_doe.design", description=__doc__)
    parser.add_argument("design", type=Path, help="a design file, e.g. designs/seed-000.yaml")
    parser.add_argument("--params", type=Path, default=Path(params.PARAMS_FILE))
    args = parser.parse_args(argv)
    if not args.design.is_file():
        raise params.ParamsError(f"{args.design}: design file not found")
    design = yaml.safe_load(args.design.read_text())
    if not isinstance(design, dict) or not design:
        raise params.ParamsError(f"{args.design}: a design is a mapping of params.yaml sections")
    if "tuning" in design:  # a one-at-a-time study: its steps are run by mnist_doe.tune, not declared here
        design = {k: v for k, v in design.items() if k != "tuning"}
        print(f"design: {args.design} holds one-at-a-time tuning steps: run them with "
              f"`python -m mnist_doe.tune {args.design}`")
        if not design:
            return
    text = apply(args.params.read_text(), design)
    params.parse(yaml.safe_load(text))
    files.write_text(args.params, text)
    cells = yaml.safe_load(text)["doe"]["cells"]
    print(f"design: {args.design} applied to {args.params}: sections {', '.join(design)}; {plural(len(cells), 'cell')}")


if __name__ == "__main__":
    run_stage("design", main)
