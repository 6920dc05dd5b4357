"""Build the offline HTML template for `dvc plots show` / `dvc plots diff`.

DVC's default page loads vega, vega-lite and vega-embed from a CDN through its
``{scripts}`` placeholder, so it renders blank without a network. This template
leaves ``{scripts}`` out and inlines the three minified browser bundles,
fetched with ``npm pack`` at pinned versions (DVC's specs use the vega-lite v5
schema, so the majors stay at vega 5, vega-lite 5, vega-embed 6).

Regenerate with ``python -m cull.plots.template`` (needs npm and the registry);
point DVC at it with ``dvc config plots.html_template ../src/cull/plots/offline.html``
(DVC resolves a relative path from the .dvc folder).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

from cull.artifacts import atomic_path

# (package, version, bundle inside the npm tarball)
BUNDLES = (
    ("vega", "5.33.1", "build/vega.min.js"),
    ("vega-lite", "5.23.0", "build/vega-lite.min.js"),
    ("vega-embed", "6.29.0", "build/vega-embed.min.js"),
)
TEMPLATE = Path(__file__).with_name("offline.html")
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")  # dvc_render.html.HTML fills these by str.replace
EXTERNAL = re.compile(r"<script[^>]*\bsrc\s*=|cdn\.|unpkg|jsdelivr", re.IGNORECASE)
SOURCE_MAP = re.compile(r"\n?//# sourceMappingURL=\S+\s*$")  # points at a .map file we do not ship

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC Plot (offline)</title>
<!--
{credits}
Built by `python -m cull.plots.template`; no script is loaded from the network.
-->
{bundles}
<style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def external_references(html: str) -> list[str]:
    """Every match of a script `src=` attribute or a CDN host name in `html` (empty = offline)."""
    return [m.group(0) for m in EXTERNAL.finditer(html)]


def _bundle(tarball: Path, member: str) -> tuple[str, dict, str | None]:
    """(bundle JS, package.json, LICENSE text or None) from one `npm pack` tarball."""
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        if f"package/{member}" not in names:
            raise FileNotFoundError(f"{tarball.name}: no package/{member} (has {len(names)} files)")

        def read(name):
            return tar.extractfile(f"package/{name}").read().decode("utf-8")

        licence = read("LICENSE") if "package/LICENSE" in names else None
        return read(member), json.loads(read("package.json")), licence


def _key(text: str) -> str:
    return re.sub(r"[\s.]+", " ", text).strip()


def render(bundles: list[tuple[str, dict, str | None]]) -> str:
    """The template page from (bundle JS, package.json, LICENSE) triples, checked to be offline."""
    scripts, credits, licences = [], [], []
    for js, meta, licence in bundles:
        js = SOURCE_MAP.sub("", js).strip()
        for bad in ("</script", "<!--", *PLACEHOLDERS):  # would end the script early or be filled in by DVC
            if bad in js:
                raise ValueError(f"{meta['name']} {meta['version']}: bundle contains {bad!r}; cannot inline it")
        scripts.append(f"<script>{js}</script>")
        credits.append(f"{meta['name']} {meta['version']}: {meta.get('license', 'see its package')}"
                       + ("" if licence else " (its npm package ships no LICENSE file)"))
        if licence and _key(licence) not in map(_key, licences):  # the same BSD text, one full stop apart
            licences.append(licence.strip())
    credits = "\n".join(credits + [""] + licences).replace("--", "- -")  # "--" may not appear in an HTML comment
    page = PAGE.format(credits=credits, bundles="\n".join(scripts))
    found = external_references(page)
    if found:
        raise ValueError(f"template: expected no external script or CDN reference, found {found[:3]}")
    return page


def build(out: Path = TEMPLATE) -> Path:
    """Fetch the pinned bundles with `npm pack` into a temporary folder and write the template to `out`."""
    with tempfile.TemporaryDirectory(prefix="cull-vega-") as tmp:
        specs = [f"{name}@{version}" for name, version, _ in BUNDLES]
        done = subprocess.run(["npm", "pack", *specs, "--json", "--pack-destination", tmp],
                              check=True, capture_output=True, text=True)
        files = {entry["name"]: Path(tmp) / entry["filename"] for entry in json.loads(done.stdout)}
        page = render([_bundle(files[name], member) for name, _, member in BUNDLES])
    with atomic_path(out) as path:
        path.write_text(page, encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TEMPLATE, help=f"template to write (default {TEMPLATE})")
    out = build(parser.parse_args().out)
    versions = ", ".join(f"{name} {version}" for name, version, _ in BUNDLES)
    print(f"template: wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {versions}")


if __name__ == "__main__":
    main()
