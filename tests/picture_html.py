"""Reads the HTML pictures of plans and runs (kedro_vertex_runner.pictures) with the standard library's parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path


@dataclass
class Picture:
    """What a page holds: its elements (tag, attributes, the SVG it sits in), its text, and every link."""

    elements: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)
    text: str = ""

    def tags(self, inside: str) -> set[str]:
        """Tags of the elements inside the SVG of class ``inside`` (``graph`` or ``gantt``)."""
        return {tag for tag, _, svg in self.elements if svg == inside}

    def attribute(self, name: str, inside: str | None = None, cls: str | None = None) -> list[str]:
        """Values of attribute ``name`` (e.g. ``data-task``), in the SVG ``inside`` or anywhere, of elements whose
        class list holds ``cls`` if given."""
        return [
            attrs[name]
            for _, attrs, svg in self.elements
            if name in attrs
            and (inside is None or svg == inside)
            and (cls is None or cls in attrs.get("class", "").split())
        ]

    def states(self, inside: str = "gantt") -> dict[str, str]:
        return {
            attrs["data-task"]: attrs["data-state"]
            for _, attrs, svg in self.elements
            if svg == inside and "data-task" in attrs and "data-state" in attrs
        }

    def links(self) -> list[str]:
        """Every ``src`` and ``href`` (``xmlns`` is a name, not a link)."""
        return [attrs[key] for _, attrs, _ in self.elements for key in ("src", "href") if key in attrs]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.picture = Picture()
        self.svg: list[str] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self.svg.append(values.get("class", ""))
        self.picture.elements.append((tag, values, self.svg[-1] if self.svg else None))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.picture.elements.append((tag, values, self.svg[-1] if self.svg else None))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg" and self.svg:
            self.svg.pop()

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def read_picture(source: str | Path) -> Picture:
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    reader = _Reader()
    reader.feed(text)
    reader.close()
    reader.picture.text = " ".join(reader.chunks)
    return reader.picture


def assert_self_contained(picture: Picture) -> None:
    """No script, no stylesheet or image fetched, no link leaving the page but to a file next to it."""
    assert not [tag for tag, _, _ in picture.elements if tag in {"script", "link", "img", "iframe"}]
    assert not [link for link in picture.links() if "://" in link or link.startswith("//")], picture.links()
