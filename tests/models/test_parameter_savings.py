from nc_keras import models


def test_parameter_savings_equal_the_papers_numbers():
    rows = models.parameter_savings()
    assert [(r["model"], r["variant"]) for r in rows] == [
        ("ResNet50", "fixed ETF classifier"),
        ("DenseNet169", "fixed ETF classifier"),
        ("ResNet18", "d = K"),
        ("ResNet50", "d = K"),
    ]
    for row in rows:
        assert round(row["reduction_percent"], 2) == row["paper_percent"], row
    # torchvision's DenseNet169 has 14,149,480 parameters.
    assert rows[1]["baseline_params"] == 14_149_480
