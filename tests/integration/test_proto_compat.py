"""Our proto/ subset against Envoy's upstream v3 API (DESIGN.md sections 5 and 6): same names,
numbers, types, labels and oneofs, so type URLs and wire bytes are Envoy's.

The upstream protos come from the npm package @grpc/grpc-js-xds (folder deps/): from
$PILLION_UPSTREAM_PROTOS, else from the version pinned in tests/conformance/node, installed into
.cache/node with npm ci when missing (node_peers.py).
Needs protoc and python3-protobuf (Debian packages protobuf-compiler, python3-protobuf)."""
import json
import os
import re
import shutil

import pytest

import proto_compat as pc

pytest.importorskip("google.protobuf", reason="python3-protobuf is not installed")
if not shutil.which("protoc"):
    pytest.skip("protoc is not installed (Debian package protobuf-compiler)", allow_module_level=True)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("proto_compat"))
    try:
        deps = pc.upstream_deps()
    except pc.Unavailable as e:
        pytest.skip(str(e))
    ours = pc.compile_ours(tmp)
    upstream = pc.compile_upstream(tmp, deps)
    return ours, upstream


def test_every_proto_is_built():
    listed = set(pc.meson_proto_files())
    present = set(pc.our_proto_files())
    assert present - listed == set(), "in proto/ but not in proto/meson.build proto_files"
    assert listed - present == set(), "in proto/meson.build but not in proto/"


def test_subset_matches_upstream(sets):
    ours, upstream = (pc.Index(s) for s in sets)
    problems = pc.mismatches(ours, upstream)
    assert not problems, f"{len(problems)} differences from upstream:\n" + "\n".join(problems)
    # Same file for every definition, so imports (and generated header names) match upstream.
    moved = [f"{n}: {ours.file_of[n]} != upstream {upstream.file_of[n]}"
             for n in list(ours.messages) + list(ours.enums) + list(ours.services)
             if ours.file_of[n] != upstream.file_of[n]]
    assert not moved, "\n".join(moved)


def test_required_coverage(sets):
    ours = pc.Index(sets[0])
    required = [
        "envoy.config.bootstrap.v3.Bootstrap", "envoy.config.bootstrap.v3.Admin",
        "envoy.config.core.v3.Address", "envoy.config.core.v3.ConfigSource",
        "envoy.config.core.v3.GrpcService", "envoy.config.core.v3.HeaderValueOption",
        "envoy.config.core.v3.HeaderMap", "envoy.config.core.v3.HealthCheck",
        "envoy.config.core.v3.TypedExtensionConfig", "envoy.config.core.v3.DataSource",
        "envoy.config.listener.v3.Listener", "envoy.config.listener.v3.FilterChain",
        "envoy.config.listener.v3.ApiListener",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "envoy.config.route.v3.RouteConfiguration", "envoy.config.route.v3.RouteAction",
        "envoy.config.route.v3.HeaderMatcher", "envoy.config.cluster.v3.Cluster",
        "envoy.config.cluster.v3.CircuitBreakers", "envoy.config.cluster.v3.OutlierDetection",
        "envoy.config.endpoint.v3.ClusterLoadAssignment",
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "envoy.extensions.transport_sockets.tls.v3.Secret",
        "envoy.extensions.filters.http.router.v3.Router",
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "envoy.config.accesslog.v3.AccessLog",
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        "envoy.service.discovery.v3.DiscoveryRequest", "envoy.service.discovery.v3.DiscoveryResponse",
        "envoy.service.discovery.v3.DeltaDiscoveryRequest",
        "envoy.service.discovery.v3.DeltaDiscoveryResponse", "envoy.service.discovery.v3.Resource",
    ]
    missing = [n for n in required if n not in ours.messages]
    assert not missing, missing
    ads = ours.services.get("envoy.service.discovery.v3.AggregatedDiscoveryService")
    assert ads and {m.name for m in ads.method} >= {"StreamAggregatedResources",
                                                     "DeltaAggregatedResources"}


def test_omissions_are_declared(sets):
    ours, upstream = (pc.Index(s) for s in sets)
    problems = pc.undeclared_omissions(ours, upstream, pc.omitted_table())
    assert not problems, f"{len(problems)} undeclared omissions:\n" + "\n".join(problems)


def test_nacks_name_the_omitted_fields():
    """src/xds/walk.c names an omitted upstream field in its NACK: its table is OMITTED.md's."""
    with open(os.path.join(pc.ROOT, "src", "xds", "walk.c")) as f:
        rows = re.findall(r'\{"([\w.]+)", (\d+), "(\w+)"\}', f.read())
    assert {(m, n): int(num) for m, num, n in rows} == pc.omitted_table()


BOOTSTRAP = {
    "node": {"id": "n1", "cluster": "c1", "locality": {"zone": "z"}},
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
    "static_resources": {
        "listeners": [{
            "name": "l1",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
            "filter_chains": [{
                "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                 "http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress",
                        "route_config": {"virtual_hosts": [{
                            "name": "vh", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/",
                                                  "headers": [{"name": "x",
                                                               "string_match": {"exact": "y"}}]},
                                        "route": {"weighted_clusters": {"clusters": [
                                            {"name": "a", "weight": 1}, {"name": "b", "weight": 3}]},
                                            "timeout": "1.500s",
                                            "retry_policy": {"retry_on": "5xx", "num_retries": 2},
                                            "hash_policy": [{"header": {"header_name": "h"}}]}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                        "access_log": [{"name": "stdout", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"}}],
                    }}],
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "common_tls_context": {"tls_certificates": [{
                        "certificate_chain": {"filename": "/c.pem"},
                        "private_key": {"filename": "/k.pem"}}]}}},
            }],
        }],
        "clusters": [{
            "name": "a", "type": "STRICT_DNS", "lb_policy": "RING_HASH", "connect_timeout": "0.250s",
            "circuit_breakers": {"thresholds": [{"max_connections": 10}]},
            "outlier_detection": {"consecutive_5xx": 3},
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "a", "endpoints": [{"lb_endpoints": [{
                "endpoint": {"address": {"socket_address": {"address": "b.example",
                                                            "port_value": 80}}}}]}]},
        }],
    },
    "dynamic_resources": {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                                         "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]},
                          "cds_config": {"ads": {}, "resource_api_version": "V3"}},
}


def _pool(fds):
    from google.protobuf import descriptor_pool, message_factory
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return pool, message_factory.MessageFactory(pool)


def test_wire_round_trip(sets):
    """A bootstrap encoded with upstream's schema decodes with ours to the same JSON, and back."""
    from google.protobuf import json_format
    (opool, ofac), (upool, ufac) = (_pool(s) for s in sets)
    name = "envoy.config.bootstrap.v3.Bootstrap"
    up_cls = ufac.GetPrototype(upool.FindMessageTypeByName(name))
    our_cls = ofac.GetPrototype(opool.FindMessageTypeByName(name))
    text = json.dumps(BOOTSTRAP)
    up = json_format.Parse(text, up_cls(), descriptor_pool=upool)
    ours = our_cls.FromString(up.SerializeToString())
    kw = {"preserving_proto_field_name": True}
    assert json_format.MessageToDict(ours, descriptor_pool=opool, **kw) == \
        json_format.MessageToDict(up, descriptor_pool=upool, **kw)
    assert not pc.has_unknown_fields(ours)
    back = up_cls.FromString(ours.SerializeToString())
    assert back == up

