"""A linear text pipeline, ``outline -> draft -> review``, with a pluggable text generator.

Floxide's version calls an LLM. Here the generator is a small protocol: the default
``OfflineGenerator`` is deterministic and needs no network; pass your own (an LLM client)
to :func:`make_workflow`. Input: a topic; output: the reviewed article.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from floxide import Node, Workflow, WorkflowCtx, edge


@runtime_checkable
class TextGenerator(Protocol):
    async def generate(self, prompt: str) -> str: ...


_CANNED = {
    "outline": ["Why {subject} matters\nGetting started with {subject}\n{subject} in practice"],
    "paragraph": [
        "{subject}: the idea, the trade-offs, and a first example.",
        "{subject}: what changes for a team that adopts it.",
        "{subject}: common mistakes and how to avoid them.",
    ],
    "review": ["A clear overview of {subject}; the examples could go deeper."],
}


class OfflineGenerator:
    """Deterministic stand-in for a language model: prompts are ``kind: subject``."""

    async def generate(self, prompt: str) -> str:
        kind, _, subject = prompt.partition(": ")
        choices = _CANNED.get(kind, ["{subject}"])
        pick = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(choices)
        return choices[pick].format(subject=subject)


class Outline(BaseModel):
    topic: str
    sections: list[str]


class Draft(BaseModel):
    topic: str
    paragraphs: list[str]


class Article(BaseModel):
    topic: str
    text: str
    review: str


class GeneratorNode(Node[Any, Any]):
    generator: TextGenerator = Field(default_factory=OfflineGenerator)


class OutlineNode(GeneratorNode):
    async def process(self, ctx: WorkflowCtx[Any], topic: str) -> Outline:
        text = await self.generator.generate(f"outline: {topic}")
        return Outline(topic=topic, sections=[line.strip() for line in text.splitlines() if line.strip()])


class DraftNode(GeneratorNode):
    async def process(self, ctx: WorkflowCtx[Any], outline: Outline) -> Draft:
        paragraphs = [await self.generator.generate(f"paragraph: {s}") for s in outline.sections]
        return Draft(topic=outline.topic, paragraphs=paragraphs)


class ReviewNode(GeneratorNode):
    async def process(self, ctx: WorkflowCtx[Any], draft: Draft) -> Article:
        text = "\n\n".join(draft.paragraphs)
        review = await self.generator.generate(f"review: {draft.topic}")
        return Article(topic=draft.topic, text=text, review=review)


def make_workflow(generator: TextGenerator | None = None) -> Workflow[str, Article]:
    """The article workflow using ``generator`` (default: :class:`OfflineGenerator`)."""
    gen = generator or OfflineGenerator()
    outline = OutlineNode(generator=gen).named("outline")
    draft = DraftNode(generator=gen).named("draft")
    review = ReviewNode(generator=gen).named("review")
    return Workflow("article", start=outline, edges=[edge(outline, draft), edge(draft, review)])


workflow = make_workflow()


def main() -> None:
    article = asyncio.run(workflow.run("Rust Programming Language"))
    print(article.text)
    print(f"review: {article.review}")


if __name__ == "__main__":
    main()
