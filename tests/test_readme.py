"""Every ```python and ```bash block of README.md is executed, so the README cannot rot.

Conventions (new blocks are picked up automatically):

* A block is skipped only when the line before its fence (blank lines aside) is
  ``<!-- readme-test: skip (why) -->``; keep these few and give the reason.
* ``python`` blocks run as printed, with no prelude, in a temporary folder holding ``photo.jpg`` (a
  small copy of the bundled sample image). Each block gets a fresh namespace.
* ``bash`` blocks: every command (``\\`` continuations joined, ``#`` comments dropped):

  - ``make TARGET``: ``make -n TARGET`` must succeed (the target exists; nothing is built here);
  - ``python -m MODULE ...``: ``--help`` of the same command (``MODULE SUBCOMMAND --help`` when
    it has one) must list every ``--flag`` the README uses; cheap commands with no placeholders
    (``python -m sin providers|segment|demo ...`` and anything ending in ``--help``) also run in
    the temporary folder and must exit 0. Placeholders are ALL-CAPS words (``DIR``,
    ``IMG_OR_DIR...``), ``[optional]`` parts and ``a|b`` choices: such a command is a synopsis and
    is only checked against ``--help``;
  - ``pip``/``cd``/``export``/``git`` lines are accepted unchecked; anything else fails the test
    (teach this file about it or skip the block).

All Python work runs in ONE driver subprocess (importing torch costs seconds per process).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b(.*?)-->")
CHEAP = {("sin", "providers"), ("sin", "segment"), ("sin", "demo")}
UNCHECKED = {"pip", "pip3", "cd", "export", "git"}
#: no prelude: every block runs as printed (it defines its own ``image``)
PRELUDE = ""


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # reason, when marked

    @property
    def id(self) -> str:
        return f"{self.lang}@L{self.line}"


def readme_blocks(text: str) -> list[Block]:
    """Fenced ```python / ```bash blocks with their line numbers and skip marks."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^\s*```\s*(\w+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1).lower(), i
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = SKIP.search(lines[k]) if k >= 0 else None
        if lang in ("python", "py", "bash", "sh", "shell", "console"):
            lang = "python" if lang in ("python", "py") else "bash"
            blocks.append(Block(lang, start + 1, textwrap.dedent("\n".join(lines[start + 1:j])),
                                (mark.group(1).strip() or "marked") if mark else None))
        i = j + 1
    return blocks


def bash_commands(code: str) -> list[str]:
    """Commands of a bash block: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\s*\n", " ", code)
    out = []
    for line in joined.splitlines():
        line = " ".join(re.sub(r"(^|\s)#.*$", "", line).split())
        if line:
            out.append(line)
    return out


def _is_placeholder(token: str) -> bool:
    return (bool(re.fullmatch(r"[A-Z][A-Z0-9_]*(\.\.\.)?", token)) or "..." in token or "|" in token
            or token.startswith("[") or token.endswith("]"))


def _flags(tokens: list[str]) -> list[str]:
    flags = []
    for t in tokens:
        for m in re.finditer(r"(?<![\w-])(--[a-zA-Z][\w-]*)", t):
            flags.append(m.group(1))
    return flags


def plan_command(cmd: str):
    """What to do with one README command: ("make", target) | ("python", module, argv, run) | ..."""
    tokens = shlex.split(cmd)
    exe = Path(tokens[0]).name
    if exe == "make":
        return ("make", tokens[1] if len(tokens) > 1 else "")
    if exe in UNCHECKED:
        return ("unchecked",)
    if re.fullmatch(r"python3?(\.\d+)?", exe) and len(tokens) >= 3 and tokens[1] == "-m":
        module, argv = tokens[2], tokens[3:]
        sub = argv[0] if argv and re.fullmatch(r"[a-z][a-z0-9_-]*", argv[0]) else None
        concrete = not any(_is_placeholder(t) for t in argv)
        run = concrete and ("--help" in argv or "-h" in argv or (module, sub) in CHEAP)
        return ("python", module, argv, sub, run)
    return ("unknown", cmd)


BLOCKS = readme_blocks(README.read_text()) if README.is_file() else []


def test_readme_has_blocks():
    assert README.is_file()
    assert any(b.lang == "python" for b in BLOCKS) and any(b.lang == "bash" for b in BLOCKS)


def test_parsing_conventions():
    text = ("intro\n<!-- readme-test: skip (needs a GPU) -->\n\n```python\nx = 1\n```\n"
            "```bash\npython -m sin segment IMG... --out DIR \\\n   [--provider NAME]  # comment\nmake demo\n```\n")
    a, b = readme_blocks(text)
    assert (a.lang, a.skip, a.code) == ("python", "(needs a GPU)", "x = 1") and b.skip is None
    cmds = bash_commands(b.code)
    assert cmds == ["python -m sin segment IMG... --out DIR [--provider NAME]", "make demo"]
    kind, module, argv, sub, run = plan_command(cmds[0])
    assert (module, sub, run) == ("sin", "segment", False) and _flags(argv) == ["--out", "--provider"]
    assert plan_command("python -m sin segment photo.jpg -k 50 -o out")[-1] is True
    assert plan_command("python -m benchmarks.runtime")[-1] is False  # expensive: --help only
    assert plan_command("make test") == ("make", "test")
    assert plan_command("rm -rf /")[0] == "unknown"


# ------------------------------------------------------------------------------------------
# one driver process for everything Python
# ------------------------------------------------------------------------------------------

_DRIVER = textwrap.dedent("""
    import contextlib, io, json, os, runpy, sys, traceback
    jobs_file, results_file = sys.argv[1], sys.argv[2]  # (jobs replace sys.argv)
    jobs = json.load(open(jobs_file))
    results = []
    for job in jobs:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        os.chdir(job["cwd"])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if job["kind"] == "exec":
                    exec(compile(job["prelude"] + job["code"], job["name"], "exec"), {"__name__": "__main__"})
                else:
                    sys.argv = [job["module"], *job["argv"]]
                    runpy.run_module(job["module"], run_name="__main__", alter_sys=True)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                code = "exception"
                err.write(traceback.format_exc())
        results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    json.dump(results, open(results_file, "w"))
""")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from PIL import Image

    from sin.io import SAMPLE_IMAGE

    d = tmp_path_factory.mktemp("readme")
    with Image.open(SAMPLE_IMAGE) as im:
        im.convert("RGB").resize((150, 100)).save(d / "photo.jpg", quality=95)
    return d


@pytest.fixture(scope="module")
def python_results(workdir):
    """Run every Python job of the README (blocks, --help checks, cheap commands) in one process."""
    jobs, keys = [], []
    for b in BLOCKS:
        if b.skip:
            continue
        if b.lang == "python":
            jobs.append({"kind": "exec", "code": b.code, "prelude": PRELUDE, "name": f"README.md:{b.line}",
                         "cwd": str(workdir / f"py{b.line}")})
            keys.append((b.id, "exec"))
            continue
        for n, cmd in enumerate(bash_commands(b.code)):
            plan = plan_command(cmd)
            if plan[0] != "python":
                continue
            _, module, argv, sub, run = plan
            for help_argv in ([sub, "--help"], ["--help"]) if sub else (["--help"],):
                jobs.append({"kind": "module", "module": module, "argv": help_argv, "cwd": str(workdir)})
                keys.append((b.id, n, "help", tuple(help_argv)))
            if run:
                jobs.append({"kind": "module", "module": module, "argv": argv,
                             "cwd": str(workdir / f"sh{b.line}_{n}")})
                keys.append((b.id, n, "run"))
    for job in jobs:
        Path(job["cwd"]).mkdir(exist_ok=True)
        if job["kind"] == "exec" or job["argv"] and "--help" not in job["argv"]:
            photo = Path(job["cwd"]) / "photo.jpg"
            if not photo.exists():
                photo.write_bytes((workdir / "photo.jpg").read_bytes())
    (workdir / "jobs.json").write_text(json.dumps(jobs))
    (workdir / "driver.py").write_text(_DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(workdir / "driver.py"), str(workdir / "jobs.json"),
                           str(workdir / "results.json")], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"README driver crashed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return dict(zip(keys, json.loads((workdir / "results.json").read_text())))


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "python"], ids=lambda b: b.id)
def test_python_block(block, python_results):
    if block.skip:
        pytest.skip(f"README.md:{block.line} marked skip {block.skip}")
    res = python_results[(block.id, "exec")]
    assert res["code"] == 0, f"README.md:{block.line} python block failed:\n{block.code}\n{res['stderr'][-3000:]}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "bash"], ids=lambda b: b.id)
def test_bash_block(block, python_results):
    if block.skip:
        pytest.skip(f"README.md:{block.line} marked skip {block.skip}")
    commands = bash_commands(block.code)
    assert commands, f"README.md:{block.line}: empty bash block"
    for n, cmd in enumerate(commands):
        plan = plan_command(cmd)
        where = f"README.md:{block.line}: `{cmd}`"
        if plan[0] == "unknown":
            pytest.fail(f"{where}: tests/test_readme.py does not know how to check this command "
                        "(add it there, or mark the block <!-- readme-test: skip (why) -->)")
        if plan[0] == "make":
            proc = subprocess.run(["make", "-n", plan[1]], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, f"{where}: no make target {plan[1]!r}: {proc.stderr.strip()}"
            continue
        if plan[0] != "python":
            continue
        _, module, argv, sub, run = plan
        helps = [python_results[(block.id, n, "help", tuple(h))] for h in ([sub, "--help"], ["--help"])] if sub \
            else [python_results[(block.id, n, "help", ("--help",))]]
        ok = [h for h in helps if h["code"] == 0 and "usage" in h["stdout"].lower()]
        assert ok, f"{where}: `python -m {module} --help` failed:\n{helps[-1]['stderr'][-2000:]}"
        text = ok[0]["stdout"]  # the subcommand's help when there is one
        missing = [f for f in _flags(argv) if f not in text and f not in ("--help",)]
        assert not missing, f"{where}: flags {missing} are not in `python -m {module} {sub or ''} --help`"
        if run:
            res = python_results[(block.id, n, "run")]
            assert res["code"] == 0, f"{where}: exit {res['code']}\n{res['stderr'][-3000:]}"
