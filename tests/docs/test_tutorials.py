"""The tutorials and their scripts stay in step: links resolve, and the scripts that
are the tutorials' code blocks in order (ch05, ch06) still contain every block."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"
EXAMPLES = ROOT / "docs" / "examples"


def code_blocks(markdown):
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


@pytest.mark.parametrize("tutorial", sorted(TUTORIALS.glob("*.md")), ids=lambda p: p.name)
def test_links_to_scripts_and_tutorials_resolve(tutorial):
    text = tutorial.read_text()
    for target in re.findall(r"\]\(([^)#]+\.(?:py|md))\)", text):
        assert (tutorial.parent / target).resolve().exists(), f"{tutorial.name}: {target}"


@pytest.mark.parametrize("topic,script", [("tune", "ch05_tune.py"), ("data", "ch06_data.py")])
def test_script_holds_every_code_block_of_its_tutorial(topic, script):
    source = (EXAMPLES / script).read_text()
    # The script writes to a temporary folder instead of the tutorial's fixed /tmp paths:
    # both become PATH before comparing.
    normalised = re.sub(r'os\.path\.join\(WORKDIR, "[^"]+"\)', "PATH", source)
    normalised = normalised.replace("WORKDIR", "PATH")
    for block in code_blocks((TUTORIALS / f"{topic}.md").read_text()):
        block = re.sub(r'"/tmp/[^"]*"', "PATH", block)
        assert block.strip() in normalised, \
            f"{script} lacks this block of {topic}.md (regenerate it):\n{block[:300]}"


def test_every_chapter_script_names_its_tutorial():
    for script in sorted(EXAMPLES.glob("ch*.py")):
        doc = script.read_text().split('"""')[1]
        named = re.findall(r"docs/tutorials/([\w]+\.md)", doc)
        for name in named:
            assert (TUTORIALS / name).exists(), f"{script.name} names missing {name}"
