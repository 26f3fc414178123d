"""benchmarks/publish.py: results files name the hardware, never the host."""

import platform
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_results_name_the_hardware_not_the_host(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(platform, "node", lambda: "secret-host-name")
    import publish

    path = tmp_path / "results.md"
    publish.publish_benchmark([("Speed", [{"backend": "torch", "s": 1.25}], ["backend", "s"],
                                "One note.")], path, argv=["bench.py", "--quick"])
    text = path.read_text()
    assert "secret-host-name" not in text
    lines = text.splitlines()
    assert lines[1] == "## Speed"
    assert lines[3].endswith(f"UTC; {publish.hardware_description()}")
    assert "| torch   | 1.25 |" in text and "Command: `bench.py --quick`" in text
    assert "## Speed" in capsys.readouterr().out
    sys.modules.pop("publish", None)
