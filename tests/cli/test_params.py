import json

from nc_keras.cli import main


def test_params_json_reports_the_papers_reductions(capsys):
    assert main(["params", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [round(r["reduction_percent"], 2) for r in rows] == [8.01, 11.76, 20.70, 4.45]
    assert all(r["paper_percent"] == round(r["reduction_percent"], 2) for r in rows)


def test_params_table(capsys):
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    for text in ("ResNet50", "DenseNet169", "ResNet18", "8.01", "11.76", "20.70", "4.45"):
        assert text in out
