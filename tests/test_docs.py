"""The worked example in docs/development.md is the file the build checks."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_worked_example_matches_the_compiled_file():
    doc = (ROOT / "docs" / "development.md").read_text()
    start = doc.index("### Adding a native type: a worked example")
    block = re.search(r"```rust\n(.*?)```", doc[start:], re.DOTALL)
    assert block, "no rust block in the worked example"
    source = (ROOT / "crates" / "ext" / "src" / "types" / "example_counter.rs").read_text()
    assert block.group(1) == source
