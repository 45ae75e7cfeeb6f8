"""What the HTML pages share (the run report, the sweep report): the Jinja2 environment over
`report/templates/`, number formatting, embedded figures and config tables.

Pages are rendered from templates with autoescaping on, so every value a page shows is
HTML-escaped unless it is deliberately marked safe (the stylesheet and the CSP, both constants of
this package). Jinja2 is imported on the first render, so `import grokscope` stays light.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from pathlib import Path

from grokscope.tracking.rundir import atomic_write_text

TEMPLATES = Path(__file__).parent / "templates"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""Content-Security-Policy of every page: no scripts, no fetches; images only from data: URIs."""


def fmt_step(s) -> str:
    """A step with thousands separators, '—' for None."""
    return "—" if s is None else f"{int(s):,}"


def fmt(v, digits: int = 4) -> str:
    """A number for a table: ints with separators, floats with `digits` significant digits."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}g}"


def figure(path: str | Path, id_: str, caption: str) -> dict:
    """A PNG embedded as a data: URI, for the `figure` macro: {id, caption, src}."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return {"id": id_, "caption": caption, "src": f"data:image/png;base64,{data}"}


def config_tables(cfg: dict) -> list[dict]:
    """The config as one {head, rows} key/value table per section (task, model, ...); the top-level
    scalars (name, seed, ...) first, under 'run'. Values are shown as JSON."""
    top = [(k, json.dumps(v)) for k, v in cfg.items() if not isinstance(v, dict)]
    tables = [{"head": ("run", ""), "rows": top}] if top else []
    for section, value in cfg.items():
        if isinstance(value, dict):
            tables.append({"head": (section, ""), "rows": [(k, json.dumps(v)) for k, v in value.items()]})
    return tables


@functools.lru_cache(maxsize=1)
def _env():
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["step"] = fmt_step
    env.globals["css"] = Markup((TEMPLATES / "report.css").read_text())
    env.globals["csp"] = Markup(CSP)
    return env


def render(template: str, **context) -> str:
    """The page `template` (a file under report/templates/) rendered with `context`."""
    from grokscope.version import __version__

    return _env().get_template(template).render(version=__version__, **context)


def write_page(path: str | Path, template: str, **context) -> Path:
    """Render `template` and write it atomically to `path`; returns the path."""
    path = Path(path)
    atomic_write_text(path, render(template, **context))
    return path
