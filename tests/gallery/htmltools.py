"""Read the gallery's HTML the way a browser's parser would (the stdlib's HTMLParser)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import ClassVar


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)


class _Tree(HTMLParser):
    VOID: ClassVar[set[str]] = {"img", "meta", "link", "input", "br", "hr", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]
        self.all: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(el)
        self.all.append(el)
        if tag not in self.VOID:
            self.stack.append(el)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        for el in self.stack[1:]:
            el.text += data


def parse(text: str) -> list[Element]:
    """Every element of the document, in order, each with the text inside it."""
    tree = _Tree()
    tree.feed(text)
    tree.close()
    return tree.all


def cards(text: str) -> list[Element]:
    return [e for e in parse(text) if e.tag == "article" and "card" in e.attrs.get("class", "").split()]


def find(el: Element, tag: str, cls: str | None = None) -> list[Element]:
    out: list[Element] = []
    for child in el.children:
        if child.tag == tag and (cls is None or cls in child.attrs.get("class", "").split()):
            out.append(child)
        out.extend(find(child, tag, cls))
    return out
