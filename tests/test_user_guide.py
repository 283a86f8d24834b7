"""docs/user_guide.md cannot rot: its Python blocks run and its links resolve.

Convention (stated at the top of the guide): every ```python block runs, in order, with each
``##`` section in a fresh namespace and a temporary working directory. A block whose first line
starts with ``# not run`` is only shown; a block whose first line is ``# requires: a, b`` runs
when the modules ``a`` and ``b`` can be imported (the section is skipped otherwise).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "user_guide.md"


@dataclass(frozen=True)
class Block:
    line: int
    """1-based line of the block's first code line in the guide."""
    code: str

    @property
    def first_line(self) -> str:
        return self.code.lstrip("\n").splitlines()[0].strip() if self.code.strip() else ""

    @property
    def runs(self) -> bool:
        return not self.first_line.startswith("# not run")

    @property
    def requires(self) -> list[str]:
        if not self.first_line.startswith("# requires:"):
            return []
        return [m.strip() for m in self.first_line.split(":", 1)[1].split(",") if m.strip()]


def sections(text: str) -> dict[str, list[Block]]:
    """``## heading`` -> its fenced ```python blocks (the text before the first heading is "")."""
    out: dict[str, list[Block]] = {"": []}
    current, fence, start, lines = "", None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is None:
            if line.startswith("## "):
                current = line[3:].strip()
                out.setdefault(current, [])
            elif line.strip().startswith("```"):
                fence, start, lines = line.strip()[3:].strip(), number + 1, []
        elif line.strip() == "```":
            if fence == "python":
                out[current].append(Block(start, "\n".join(lines) + "\n"))
            fence = None
        else:
            lines.append(line)
    assert fence is None, "unclosed code fence in the guide"
    return out


SECTIONS = sections(GUIDE.read_text())
RUNNABLE = {name: blocks for name, blocks in SECTIONS.items() if any(b.runs for b in blocks)}


def test_the_guide_has_runnable_code_for_every_topic():
    assert len(RUNNABLE) >= 4, sorted(RUNNABLE)
    for topic in ("plain PyTorch", "Hugging Face", "RL library", "Adding a task"):
        assert any(topic in name for name in RUNNABLE), f"no runnable section about {topic!r}"
    assert any(not b.runs for blocks in SECTIONS.values() for b in blocks), (
        "the Lightning example is expected to be shown but not run"
    )


def test_links_resolve():
    text = GUIDE.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "the guide links no local file"
    missing = [t for t in local if not (GUIDE.parent / t).exists()]
    assert not missing, f"broken links in docs/user_guide.md: {missing}"
    for doc in ("greedylr_usage.md", "theory/nmf_stability.md", "theory/greedylr.md"):
        assert doc in local, f"the guide should link {doc}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNNABLE), ids=list(RUNNABLE))
def test_section_runs(name, tmp_path, monkeypatch):
    blocks = [b for b in RUNNABLE[name] if b.runs]
    missing = [m for b in blocks for m in b.requires if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    monkeypatch.chdir(tmp_path)  # blocks may write files (checkpoints, Trainer output)
    namespace: dict = {"__name__": "__user_guide__"}
    for block in blocks:
        # Pad with newlines so tracebacks point at the guide's own line numbers.
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, str(GUIDE), "exec"), namespace)  # noqa: S102
