"""pillion-cp, the reference control plane, driven by a real xDS client (python3-grpcio with our
proto/ compiled to Python at test time): SotW and Delta ADS, ACK/NACK, reload on file change,
refused files, push ordering, per-node views and the status endpoint."""
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from conftest import CP, ROOT, write

grpc = pytest.importorskip("grpc")

SOTW = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
T = "type.googleapis.com/"
CDS = T + "envoy.config.cluster.v3.Cluster"
EDS = T + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = T + "envoy.config.listener.v3.Listener"
RDS = T + "envoy.config.route.v3.RouteConfiguration"


# ---------------------------------------------------------------------------------------------
# resource files

def listener_yaml(route="local_route"):
    return f"""resources:
- "@type": {LDS}
  name: ingress_http
  address:
    socket_address: {{ address: 127.0.0.1, port_value: 10000 }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": {T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ingress_http
        rds:
          route_config_name: {route}
          config_source: {{ ads: {{}}, resource_api_version: V3 }}
        http_filters:
        - name: envoy.filters.http.router
          typed_config:
            "@type": {T}envoy.extensions.filters.http.router.v3.Router
"""


def routes_yaml(cluster="demo_upstream", name="local_route"):
    return f"""resources:
- "@type": {RDS}
  name: {name}
  virtual_hosts:
  - name: demo
    domains: ["*"]
    routes:
    - match: {{ prefix: "/" }}
      route: {{ cluster: {cluster}, timeout: 5s }}
"""


def clusters_yaml(names=("demo_upstream",), port=18080, selector=""):
    out = selector + "resources:\n"
    for n in names:
        out += f"""- "@type": {CDS}
  name: {n}
  type: EDS
  connect_timeout: 1s
  eds_cluster_config:
    eds_config: {{ ads: {{}} }}
- "@type": {EDS}
  cluster_name: {n}
  endpoints:
  - lb_endpoints:
    - endpoint:
        address:
          socket_address: {{ address: 127.0.0.1, port_value: {port} }}
"""
    return out


@pytest.fixture
def resdir(tmp_path):
    d = tmp_path / "xds"
    d.mkdir()
    (d / "listeners.yaml").write_text(listener_yaml())
    (d / "routes.yaml").write_text(routes_yaml())
    (d / "clusters.yaml").write_text(clusters_yaml())
    return d


# ---------------------------------------------------------------------------------------------
# the control plane process

# ---------------------------------------------------------------------------------------------
# an xDS client

class Ads:
    """One ADS stream (SotW or Delta) with a reader thread; requests are sent with send()."""

    def __init__(self, pb, addr, node_id="sidecar-1", cluster="demo", delta=False, metadata=None):
        self.pb, self.delta = pb, delta
        self.node = pb.base.Node(id=node_id, cluster=cluster)
        for k, v in (metadata or {}).items():
            self.node.metadata.fields[k].string_value = v
        self.channel = grpc.insecure_channel(addr)
        if delta:
            req, resp = pb.disc.DeltaDiscoveryRequest, pb.disc.DeltaDiscoveryResponse
        else:
            req, resp = pb.disc.DiscoveryRequest, pb.disc.DiscoveryResponse
        self.req_cls = req
        method = self.channel.stream_stream(DELTA if delta else SOTW,
                                            request_serializer=req.SerializeToString,
                                            response_deserializer=resp.FromString)
        self.out = queue.Queue()
        self.inq = queue.Queue()
        self.first = True
        self.call = method(iter(self.out.get, None))
        self.error = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for r in self.call:
                self.inq.put(r)
        except grpc.RpcError as e:
            self.error = e
        self.inq.put(None)

    def send(self, **kw):
        r = self.req_cls(**kw)
        if self.first:
            r.node.CopyFrom(self.node)
            self.first = False
        self.out.put(r)

    def recv(self, timeout=5):
        try:
            r = self.inq.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no response within %.1f s" % timeout)
        assert r is not None, f"stream ended: {self.error}"
        return r

    def quiet(self, timeout=0.5):
        """Asserts that nothing arrives for timeout seconds."""
        try:
            r = self.inq.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected response: {r}")

    def ack(self, r, names=None):
        self.send(type_url=r.type_url, version_info=r.version_info, response_nonce=r.nonce,
                  resource_names=names or [])

    def close(self):
        self.out.put(None)
        self.call.cancel()
        self.channel.close()


@pytest.fixture
def ads(pb):
    made = []

    def make(addr, **kw):
        a = Ads(pb, addr, **kw)
        made.append(a)
        return a
    yield make
    for a in made:
        a.close()


def unpack(pb, r):
    cls = {CDS: pb.cluster.Cluster, EDS: pb.endpoint.ClusterLoadAssignment,
           LDS: pb.listener.Listener, RDS: pb.route.RouteConfiguration}
    out = []
    for any_ in r.resources:
        if hasattr(any_, "resource"):  # Delta: a Resource wrapping the Any
            any_ = any_.resource
        m = cls[any_.type_url]()
        assert any_.Unpack(m)
        out.append(m)
    return out


def port_of(cla):
    return cla.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value


# ---------------------------------------------------------------------------------------------
# tests

def test_sotw_serves_every_type_with_versions_and_nonces(cp, ads, pb, resdir):
    c = cp(resdir)
    a = ads(c.addr)
    a.send(type_url=CDS)
    r = a.recv()
    assert r.type_url == CDS and r.version_info == "1" and r.nonce
    (cl,) = unpack(pb, r)
    assert cl.name == "demo_upstream" and cl.connect_timeout.seconds == 1
    assert cl.type == pb.cluster.Cluster.EDS
    a.ack(r)
    a.send(type_url=EDS, resource_names=["demo_upstream"])
    e = a.recv()
    assert e.type_url == EDS and e.version_info == "1" and e.nonce != r.nonce
    (cla,) = unpack(pb, e)
    assert cla.cluster_name == "demo_upstream" and port_of(cla) == 18080
    a.ack(e, ["demo_upstream"])
    a.send(type_url=LDS)
    ll = a.recv()
    (lis,) = unpack(pb, ll)
    assert ll.type_url == LDS and lis.name == "ingress_http"
    assert lis.address.socket_address.port_value == 10000
    a.ack(ll)
    a.send(type_url=RDS, resource_names=["local_route"])
    rr = a.recv()
    (rc,) = unpack(pb, rr)
    assert rc.name == "local_route"
    assert rc.virtual_hosts[0].routes[0].route.cluster == "demo_upstream"
    a.ack(rr, ["local_route"])
    n = c.node("sidecar-1", lambda n: n["types"].get("rds", {}).get("acked_version") == "1")
    assert n["cluster"] == "demo" and n["stream"] == "sotw" and n["connected_since"]
    for t in ("cds", "eds", "lds", "rds"):
        assert n["types"][t]["sent_version"] == "1", n
        assert n["types"][t]["acked_version"] == "1", n
        assert n["types"][t]["last_nack"] is None
        assert n["types"][t]["state"] == "SYNCED"
    assert n["types"]["cds"]["subscribed"] == ["*"]
    assert n["types"]["eds"]["subscribed"] == ["demo_upstream"]
    a.quiet()


def test_nack_is_recorded_and_not_resent(cp, ads, resdir):
    c = cp(resdir)
    a = ads(c.addr)
    a.send(type_url=CDS)
    r = a.recv()
    a.send(type_url=CDS, version_info="", response_nonce=r.nonce,
           error_detail=a.pb.status.Status(code=3, message="cluster demo_upstream: bad stuff"))
    n = c.node("sidecar-1", lambda n: n["types"]["cds"]["last_nack"] is not None)
    nack = n["types"]["cds"]["last_nack"]
    assert nack["message"] == "cluster demo_upstream: bad stuff"
    assert nack["version"] == "1" and nack["nonce"] == r.nonce
    assert n["types"]["cds"]["acked_version"] is None
    assert n["types"]["cds"]["nacks"] == 1
    assert n["types"]["cds"]["state"] == "NACKED"
    a.quiet()  # a NACK of the current version does not make it send the same thing again


def test_stale_nonce_is_ignored(cp, ads, resdir):
    c = cp(resdir)
    a = ads(c.addr)
    a.send(type_url=CDS)
    r = a.recv()
    a.send(type_url=CDS, version_info="1", response_nonce="not-" + r.nonce)
    a.quiet()
    n = c.node("sidecar-1")
    assert n["types"]["cds"]["acked_version"] is None and n["types"]["cds"]["awaiting_ack"]
    a.ack(r)
    c.node("sidecar-1", lambda n: n["types"]["cds"]["acked_version"] == "1")


def test_file_change_pushes_new_version_within_a_second(cp, ads, pb, resdir):
    c = cp(resdir)
    a = ads(c.addr)
    a.send(type_url=CDS)
    a.ack(a.recv())
    a.send(type_url=EDS, resource_names=["demo_upstream"])
    e = a.recv()
    a.ack(e, ["demo_upstream"])
    c.node("sidecar-1", lambda n: n["types"]["eds"]["acked_version"] == "1")
    t0 = time.monotonic()
    write(resdir / "clusters.yaml", clusters_yaml(port=18081))
    e2 = a.recv(timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    # only the endpoints changed: EDS goes to version 2, CDS is not resent
    assert e2.type_url == EDS and e2.version_info == "2"
    assert port_of(unpack(pb, e2)[0]) == 18081
    a.ack(e2, ["demo_upstream"])
    a.quiet()
    st = c.status()
    assert st["resources"]["eds"]["version"] == "2" and st["resources"]["cds"]["version"] == "1"
    assert st["loads_ok"] >= 2
    # rewriting identical content changes nothing
    write(resdir / "clusters.yaml", clusters_yaml(port=18081))
    a.quiet(0.5)
    assert c.status()["resources"]["eds"]["version"] == "2"


def test_bad_file_is_refused_and_last_good_set_kept(cp, ads, pb, resdir):
    c = cp(resdir)
    a = ads(c.addr)
    a.send(type_url=CDS)
    r = a.recv()
    a.ack(r)
    bad = clusters_yaml().replace("connect_timeout: 1s", "connect_timeout: 1s\n  conect_timeout: 2s")
    write(resdir / "clusters.yaml", bad)
    deadline = time.monotonic() + 3
    while c.status()["last_error"] is None:
        assert time.monotonic() < deadline, c.output()
        time.sleep(0.05)
    err = c.status()["last_error"]
    e0 = err["errors"][0]
    assert e0["file"].endswith("clusters.yaml") and e0["line"] == 6 and e0["col"] == 3
    assert e0["path"] == "resources[0].conect_timeout", err
    assert "clusters.yaml:6:3" in err["message"] or "clusters.yaml:6:3" in c.output()
    assert "clusters.yaml:6:3" in c.output()  # printed to stderr too
    assert c.status()["loads_rejected"] == 1
    a.quiet()
    # a route naming a cluster that no file defines is refused as well
    write(resdir / "routes.yaml", routes_yaml(cluster="nope"))
    write(resdir / "clusters.yaml", clusters_yaml())
    deadline = time.monotonic() + 3
    while c.status()["loads_rejected"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    msg = c.status()["last_error"]["message"]
    assert "routes.yaml:9" in msg and "unknown cluster 'nope'" in msg, msg
    # the old set is still what new clients get
    b = ads(c.addr, node_id="late")
    b.send(type_url=CDS)
    r2 = b.recv()
    assert r2.version_info == "1" and unpack(pb, r2)[0].connect_timeout.seconds == 1
    # fixing the files clears the error and serves again
    write(resdir / "routes.yaml", routes_yaml())
    write(resdir / "clusters.yaml", clusters_yaml(names=("demo_upstream", "extra")))
    r3 = a.recv(timeout=2)
    assert r3.type_url == CDS and r3.version_info == "2"
    assert sorted(x.name for x in unpack(pb, r3)) == ["demo_upstream", "extra"]
    assert c.status()["last_error"] is None


def test_clusters_are_sent_and_acked_before_routes_that_use_them(cp, ads, pb, resdir):
    c = cp(resdir)
    a = ads(c.addr)
    a.send(type_url=CDS)
    a.ack(a.recv())
    a.send(type_url=LDS)
    a.ack(a.recv())
    a.send(type_url=RDS, resource_names=["local_route"])
    a.ack(a.recv(), ["local_route"])
    c.node("sidecar-1", lambda n: n["types"]["rds"]["acked_version"] == "1")
    # one change: a new cluster, and the route moves to it
    write(resdir / "clusters.yaml", clusters_yaml(names=("demo_upstream", "v2")))
    write(resdir / "routes.yaml", routes_yaml(cluster="v2"))
    first = a.recv(timeout=2)
    assert first.type_url == CDS, first
    assert "v2" in [x.name for x in unpack(pb, first)]
    a.quiet(0.7)  # the route waits for the clusters' ACK
    n = c.node("sidecar-1")
    assert n["types"]["cds"]["awaiting_ack"] and n["types"]["cds"]["state"] == "STALE"
    assert n["types"]["rds"]["sent_version"] == "1"
    a.ack(first)
    rr = a.recv()
    assert rr.type_url == RDS and unpack(pb, rr)[0].virtual_hosts[0].routes[0].route.cluster == "v2"


def test_lds_before_rds_in_one_push(cp, ads, pb, resdir):
    c = cp(resdir)
    a = ads(c.addr)
    a.send(type_url=LDS)
    a.ack(a.recv())
    a.send(type_url=RDS, resource_names=["local_route", "r2"])
    a.ack(a.recv(), ["local_route", "r2"])
    write(resdir / "routes.yaml", routes_yaml() + routes_yaml(name="r2").replace("resources:\n", ""))
    write(resdir / "listeners.yaml", listener_yaml(route="r2"))
    got = [a.recv(timeout=2), a.recv(timeout=2)]
    # both files changed within the debounce: one reload, LDS before RDS
    assert [g.type_url for g in got] == [LDS, RDS], [g.type_url for g in got]


def test_delta_cds_eds(cp, ads, pb, resdir):
    write(resdir / "clusters.yaml", clusters_yaml(names=("a", "b")))
    write(resdir / "routes.yaml", routes_yaml(cluster="a"))
    c = cp(resdir)
    d = ads(c.addr, delta=True, node_id="delta-1")
    d.send(type_url=CDS)
    r = d.recv()
    assert r.type_url == CDS and r.system_version_info == "1" and r.nonce
    vers = {x.name: x.version for x in r.resources}
    assert sorted(vers) == ["a", "b"] and all(len(v) == 16 for v in vers.values())
    assert list(r.removed_resources) == []
    d.send(type_url=CDS, response_nonce=r.nonce)
    # EDS by name; a name that does not exist is reported as removed
    d.send(type_url=EDS, resource_names_subscribe=["a", "ghost"])
    e = d.recv()
    assert [x.name for x in e.resources] == ["a"] and list(e.removed_resources) == ["ghost"]
    assert port_of(unpack(pb, e)[0]) == 18080
    d.send(type_url=EDS, response_nonce=e.nonce)
    d.send(type_url=EDS, resource_names_subscribe=["b"], resource_names_unsubscribe=["a"])
    e2 = d.recv()
    assert [x.name for x in e2.resources] == ["b"] and list(e2.removed_resources) == []
    d.send(type_url=EDS, response_nonce=e2.nonce)
    n = c.node("delta-1", lambda n: n["types"]["eds"]["acks"] == 2)
    assert n["stream"] == "delta" and sorted(n["types"]["eds"]["subscribed"]) == ["b", "ghost"]
    # change b's endpoints and delete cluster a: only what changed is sent
    write(resdir / "clusters.yaml", clusters_yaml(names=("b",), port=19000))
    write(resdir / "routes.yaml", routes_yaml(cluster="b"))
    got = {}
    for _ in range(2):
        m = d.recv(timeout=2)
        got[m.type_url] = m
    cds, eds = got[CDS], got[EDS]
    assert list(cds.resources) == [] and list(cds.removed_resources) == ["a"]
    assert cds.system_version_info == "2"
    assert [x.name for x in eds.resources] == ["b"] and port_of(unpack(pb, eds)[0]) == 19000
    # a NACK is recorded against its nonce
    d.send(type_url=CDS, response_nonce=cds.nonce,
           error_detail=d.pb.status.Status(code=3, message="no thanks"))
    n = c.node("delta-1", lambda n: n["types"]["cds"]["last_nack"] is not None)
    assert n["types"]["cds"]["last_nack"]["message"] == "no thanks"
    assert n["types"]["cds"]["last_nack"]["version"] == "2"


def test_delta_initial_versions_are_not_resent(cp, ads, resdir):
    c = cp(resdir)
    d = ads(c.addr, delta=True, node_id="d1")
    d.send(type_url=CDS)
    r = d.recv()
    held = {x.name: x.version for x in r.resources}
    d.close()
    # a reconnecting client says what it holds: nothing new is sent, stale names are removed
    d2 = ads(c.addr, delta=True, node_id="d1")
    d2.send(type_url=CDS, initial_resource_versions=dict(held, gone="0123456789abcdef"))
    r2 = d2.recv()
    assert list(r2.resources) == [] and list(r2.removed_resources) == ["gone"]


def test_per_node_views(cp, ads, pb, resdir):
    # web nodes (by metadata) get a second cluster; sidecar-b (by id) gets its own demo_upstream
    (resdir / "web.yaml").write_text(
        clusters_yaml(names=("web_only",), selector="node_selector:\n  metadata: {app: web}\n"))
    (resdir / "b.yaml").write_text(
        clusters_yaml(port=28080, selector="node_selector: {id: sidecar-b}\n"))
    c = cp(resdir)
    a = ads(c.addr, node_id="sidecar-a", metadata={"app": "web"})
    b = ads(c.addr, node_id="sidecar-b")
    for x in (a, b):
        x.send(type_url=CDS)
        x.send(type_url=EDS, resource_names=["demo_upstream", "web_only"])
    ra, rb = a.recv(), b.recv()
    assert sorted(x.name for x in unpack(pb, ra)) == ["demo_upstream", "web_only"]
    assert [x.name for x in unpack(pb, rb)] == ["demo_upstream"]
    ea, eb = a.recv(), b.recv()
    assert sorted((x.cluster_name, port_of(x)) for x in unpack(pb, ea)) == [
        ("demo_upstream", 18080), ("web_only", 18080)]
    assert [(x.cluster_name, port_of(x)) for x in unpack(pb, eb)] == [("demo_upstream", 28080)]
    for x, r, e in ((a, ra, ea), (b, rb, eb)):
        x.ack(r)
        x.ack(e, ["demo_upstream", "web_only"])
    ids = {n["id"]: n for n in c.status()["nodes"]}
    assert {"sidecar-a", "sidecar-b"} <= set(ids)
    # a change scoped to sidecar-b reaches only sidecar-b
    write(resdir / "b.yaml", clusters_yaml(port=28081, selector="node_selector: {id: sidecar-b}\n"))
    eb2 = b.recv(timeout=2)
    assert eb2.type_url == EDS and port_of(unpack(pb, eb2)[0]) == 28081
    a.quiet()


def test_selector_duplicates_and_unknown_keys_are_refused(cp, tmp_path, resdir):
    (resdir / "dup.yaml").write_text(clusters_yaml())
    res = subprocess.run([CP, "--resources", str(resdir), "--xds-address", "127.0.0.1:0",
                          "--status-address", "127.0.0.1:0"], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 1
    assert "defined twice for the same nodes" in res.stderr, res.stderr
    assert "dup.yaml:3:9" in res.stderr or "dup.yaml:3" in res.stderr, res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("node_selector: {idd: x}\nresources: []\n")
    res = subprocess.run([CP, "--resources", str(bad)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 1 and "bad.yaml:1:17" in res.stderr and "idd" in res.stderr


def test_unknown_method_and_clean_exit(cp, resdir):
    c = cp(resdir)
    ch = grpc.insecure_channel(c.addr)
    m = ch.unary_unary("/envoy.service.discovery.v3.AggregatedDiscoveryService/Nope")
    with pytest.raises(grpc.RpcError) as ei:
        m(b"", timeout=5)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # bytes that are no DiscoveryRequest end that stream only
    garbage = ch.stream_stream(SOTW)
    with pytest.raises(grpc.RpcError) as ei:
        list(garbage(iter([b"\xff\xff\xff"]), timeout=5))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "undecodable" in ei.value.details()
    ch.close()
    assert c.status()["resources"]["cds"]["count"] == 1
    assert c.stop(signal.SIGTERM) == 0


def test_streams_open_at_shutdown_exit_cleanly(cp, ads, resdir):
    c = cp(resdir)
    a = ads(c.addr)
    d = ads(c.addr, delta=True, node_id="d")
    a.send(type_url=CDS)
    d.send(type_url=CDS)
    a.recv()
    d.recv()
    assert c.stop(signal.SIGINT) == 0


def test_example_resources_load(cp, ads, pb):
    c = cp(os.path.join(ROOT, "examples", "xds"))
    st = c.status()
    assert {t: st["resources"][t]["count"] for t in ("cds", "eds", "lds", "rds")} == {
        "cds": 1, "eds": 1, "lds": 1, "rds": 1}
