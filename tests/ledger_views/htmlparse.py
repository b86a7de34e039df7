"""A small reading of the report's HTML with the standard library's parser."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """Sections by id, their text, every src/href/url, and the elements' attributes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, list[str]] = {}
        self.links: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._section: str | None = None
        self._raw: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        for name in ("src", "href", "action", "data", "poster", "srcset"):
            if found.get(name):
                self.links.append(found[name] or "")
        if tag == "section":
            self._section = found.get("id") or ""
            self.sections[self._section] = []
        if tag in ("script", "style"):
            self._raw = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        if tag in ("script", "style"):
            self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw == "script":
            self.scripts.append(data)
        elif self._raw == "style":
            self.styles.append(data)
        elif self._section is not None:
            self.sections[self._section].append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections[section]).split())

    def with_attr(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for _tag, attrs in self.tags if name in attrs]
