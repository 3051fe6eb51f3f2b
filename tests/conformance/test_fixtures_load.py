"""The integration fixtures reach this folder (a real pillion-cp starts and answers /status)."""
from conftest import CP, write


def test_control_plane_fixture_is_shared(tmp_path, cp):
    res = tmp_path / "res.yaml"
    write(res, "resources: []\n")
    c = cp(res)
    assert c.status()["nodes"] == []
    assert CP.endswith("pillion-cp")
