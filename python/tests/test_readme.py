"""The README's Python example runs as written."""
import os
import re

from conftest import ROOT


def test_readme_python_example():
    text = open(os.path.join(ROOT, "README.md")).read()
    sec = text[text.index("## Python"):]
    block = re.search(r"```python\n(.*?)```", sec, re.S).group(1)
    assert 8 <= len(block.strip().splitlines()) <= 14
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
