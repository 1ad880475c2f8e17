"""The README's test command is what CI runs, so the two cannot drift apart."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*)\n```", readme)
    test_commands = [c for c in commands if c.endswith("pytest --nbval")]
    assert len(test_commands) == 1, "the README must give exactly one test command"
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert ci_lines[-1] == test_commands[0], ".ci/run must end with the README's test command"
