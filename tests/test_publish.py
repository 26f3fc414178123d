"""benchmarks/publish.py: results files name the hardware, never the host, and are appended whole."""

import platform
import sys
from pathlib import Path

import pytest

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


def test_results_are_appended_whole_or_not_at_all(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from publish import append_results

    results = tmp_path / "results.md"
    results.write_text("# Earlier results\n")

    class Interrupted:  # the append stopped in the middle (a Ctrl-C while formatting)
        def __str__(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        append_results(results, "bench", "| a |", notes=Interrupted())
    assert results.read_text() == "# Earlier results\n"
    append_results(results, "bench", "| a |", notes="n")
    text = results.read_text()
    assert text.startswith("# Earlier results\n\n## bench\n\n") and text.endswith("\n\n| a |\n\nn\n")
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]
    sys.modules.pop("publish", None)
