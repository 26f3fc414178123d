"""`landscape`: every method from several starts, as a table."""

from nc_keras import ufm


def test_landscape_rows_and_table():
    result = ufm.landscape(4, 5, 10, methods=("gd", "lbfgs"), starts=2, progress=False)
    assert len(result.rows) == 4 and result.all_reached()
    assert [(row["method"], row["start"]) for row in result.rows] == [
        ("gd", 0), ("gd", 1), ("lbfgs", 0), ("lbfgs", 1)
    ]
    assert "(f-f*)/f*" in result.table()
