"""pillion-cp's incremental reloads with a real xDS client: a change to one file of many is read
alone, only the changed resource is decoded, SotW still sends the full set of the type and Delta
just the change; a bad change keeps the last good set; a deleted file's resources go away."""
import os

from conftest import until, write
from test_cp import CDS, EDS, ads, clusters_yaml, listener_yaml, port_of, routes_yaml, unpack  # noqa: F401

N = 40


def make_dir(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    (d / "listeners.yaml").write_text(listener_yaml())
    (d / "routes.yaml").write_text(routes_yaml(cluster="c00"))
    for i in range(N):
        (d / f"c{i:02d}.yaml").write_text(clusters_yaml(names=(f"c{i:02d}",), port=20000 + i))
    return d


def subscribe(a, names):
    a.send(type_url=CDS)
    c = a.recv()
    a.ack(c)
    a.send(type_url=EDS, resource_names=names)
    e = a.recv()
    a.ack(e, names)
    return c, e


def test_one_file_of_many_sotw(cp, ads, pb, tmp_path):
    d = make_dir(tmp_path)
    c = cp(d)
    a = ads(c.addr)
    names = [f"c{i:02d}" for i in range(N)]
    cds, eds = subscribe(a, names)
    assert len(cds.resources) == N and len(eds.resources) == N
    c.node("sidecar-1", lambda n: n["types"]["eds"]["acked_version"] == "1")
    write(d / "c07.yaml", clusters_yaml(names=("c07",), port=30007))
    e2 = a.recv(timeout=2)
    assert e2.type_url == EDS and e2.version_info == "2"
    got = {x.cluster_name: port_of(x) for x in unpack(pb, e2)}
    assert len(got) == N and got["c07"] == 30007 and got["c08"] == 20008  # the full set
    a.ack(e2, names)
    a.quiet()  # CDS did not change: not resent
    st = c.status()
    assert st["last_load"]["files_read"] == 1 and st["last_load"]["files_parsed"] == 1
    assert st["last_load"]["decoded"] == 1, st["last_load"]  # the assignment; its cluster kept
    assert st["last_load"]["kept"] == 2 * N + 1 and not st["last_load"]["full"]
    # the unchanged resources are byte-identical to the first response's
    first = {r.value for r in eds.resources}
    assert sum(r.value in first for r in e2.resources) == N - 1


def test_one_file_of_many_delta_sends_only_the_change(cp, ads, pb, tmp_path):
    d = make_dir(tmp_path)
    c = cp(d)
    a = ads(c.addr, delta=True)
    a.send(type_url=EDS, resource_names_subscribe=["*"])
    r = a.recv()
    assert len(r.resources) == N
    a.send(type_url=EDS, response_nonce=r.nonce)
    write(d / "c11.yaml", clusters_yaml(names=("c11",), port=30011))
    r2 = a.recv(timeout=2)
    assert [x.name for x in r2.resources] == ["c11"] and not r2.removed_resources
    a.send(type_url=EDS, response_nonce=r2.nonce)
    os.unlink(d / "c12.yaml")
    r3 = a.recv(timeout=2)
    assert not r3.resources and list(r3.removed_resources) == ["c12"]


def test_bad_change_to_one_file_keeps_the_set_and_a_fix_is_taken(cp, ads, pb, tmp_path):
    d = make_dir(tmp_path)
    c = cp(d)
    a = ads(c.addr)
    names = [f"c{i:02d}" for i in range(N)]
    subscribe(a, names)
    write(d / "c03.yaml", clusters_yaml(names=("c03",)).replace("connect_timeout", "conect_timeout"))
    until(lambda: c.status()["loads_rejected"] == 1, 5, "the bad file refused")
    err = c.status()["last_error"]["errors"][0]
    assert err["file"].endswith("c03.yaml") and err["line"] == 5 and "conect_timeout" in err["path"]
    a.quiet(0.3)
    write(d / "c03.yaml", clusters_yaml(names=("c03",), port=30003))
    e = a.recv(timeout=2)
    assert e.type_url == EDS and {x.cluster_name: port_of(x) for x in unpack(pb, e)}["c03"] == 30003
    a.ack(e, names)
    # deleting the cluster the (unchanged) route names is refused, with the route's position
    os.unlink(d / "c00.yaml")
    until(lambda: c.status()["loads_rejected"] == 2, 5, "the deletion refused")
    msg = c.status()["last_error"]["message"]
    assert "routes.yaml:9:" in msg and "unknown cluster 'c00'" in msg, msg
    a.quiet(0.3)
    # deleting one nobody names is taken: every node is sent the smaller set
    os.unlink(d / "c39.yaml")
    write(d / "c00.yaml", clusters_yaml(names=("c00",), port=20000))
    r = a.recv(timeout=2)
    assert r.type_url == CDS and len(r.resources) == N - 1
    assert c.status()["last_load"]["full"]  # a cluster name went away: routes checked again
