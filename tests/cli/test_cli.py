import subprocess
import sys

import pytest

from nc_keras.cli import main


def test_help_lists_every_subcommand():
    result = subprocess.run(
        [sys.executable, "-m", "nc_keras.cli", "--help"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0
    for command in ("demo", "params"):
        assert command in result.stdout


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["no-such-command"])
    assert exit.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
