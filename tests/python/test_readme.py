"""The README's commands, run as written against a fresh mesh, so the README
cannot drift from the software.

Every ```sh block from "Exploring with buf curl or grpcurl" on is run in
order, in one bash at the repository's root (so `buf=...` and `key=...`
carry over), with the README's ports swapped for the test mesh's and
WIZDATA_DATA_DIR set to its data, as `make run`'s ./data would be. Each
command must exit 0 (a `timeout` command: end by its timeout, 124) and print
every `# → text` line that follows it.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, MeshProcess

README = ROOT / "README.md"
FIRST_EXPLORING_SECTION = "## Exploring with buf curl or grpcurl"
EXPECTATION = "# → "
README_PORTS = {"127.0.0.1:50051": "target", "127.0.0.1:8080": "gateway_target", "127.0.0.1:9464": "metrics_target"}


def exploring_blocks(text: str) -> list[str]:
    """The ```sh blocks from the first exploring section to the end."""
    start = text.index(FIRST_EXPLORING_SECTION)
    return re.findall(r"^```sh\n(.*?)^```", text[start:], flags=re.S | re.M)


def commands_of(block: str) -> list[tuple[str, list[str]]]:
    """Each command of a block (continued lines and quoted newlines joined)
    with the outputs the README says it prints."""
    commands: list[tuple[str, list[str]]] = []
    pending = ""
    for line in block.splitlines():
        if not pending:
            if line.startswith(EXPECTATION):
                assert commands, f"an expected output before any command: {line!r}"
                commands[-1][1].append(line[len(EXPECTATION):])
                continue
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        pending += line + "\n"
        # A command goes on past a trailing backslash or an open single quote.
        if line.endswith("\\") or pending.count("'") % 2:
            continue
        commands.append((pending.rstrip("\n"), []))
        pending = ""
    assert not pending, f"a command is never finished: {pending!r}"
    return commands


def is_assignment(command: str) -> bool:
    return re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", command) is not None


def test_the_readme_parser_finds_commands_and_what_they_print():
    block = "x=1   # a note\n# a comment\necho 'a\nb' \\\n  c\n# → a\n# → c\n"
    assert commands_of(block) == [("x=1   # a note", []), ("echo 'a\nb' \\\n  c", ["a", "c"])]


@pytest.fixture(scope="module")
def readme_mesh():
    # A mesh of its own: the README writes (a symbol, keys) that other tests
    # should not see.
    process = MeshProcess()
    yield process
    process.stop()


def test_every_exploring_command_of_the_readme_works_as_written(readme_mesh, tmp_path: Path):
    mesh = readme_mesh
    mesh.metrics_target = f"127.0.0.1:{mesh.metrics_port}"
    commands = [command for block in exploring_blocks(README.read_text()) for command in commands_of(block)]
    assert len(commands) >= 20, "the exploring sections were found"
    script = ["cd " + str(ROOT)]
    for index, (command, expected) in enumerate(commands):
        assert expected or is_assignment(command), f"say what this prints (# → ...): {command}"
        for port, attribute in README_PORTS.items():
            command = command.replace(port, getattr(mesh, attribute))
        script.append(f'{{ {command}\n}} >"{tmp_path}/{index}.out" 2>"{tmp_path}/{index}.err"; '
                      f'echo $? >"{tmp_path}/{index}.rc"')
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["WIZDATA_DATA_DIR"] = mesh.data_dir.name
    subprocess.run(["bash", "-c", "\n".join(script)], env=env, timeout=600, check=False)

    for index, (command, expected) in enumerate(commands):
        rc = int((tmp_path / f"{index}.rc").read_text())
        out = (tmp_path / f"{index}.out").read_text()
        err = (tmp_path / f"{index}.err").read_text()
        wanted_rc = 124 if command.startswith("timeout ") else 0
        assert rc == wanted_rc, f"{command}\nexited {rc}\n{err}"
        for text in expected:
            assert text in out, f"{command}\ndid not print {text!r}:\n{out}\n{err}"
