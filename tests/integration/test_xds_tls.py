"""The ADS channel over TLS, as Istio's sidecars reach istiod on 15012: pillion-cp serves ADS
over TLS (--xds-tls-address, with client certificates required when --tls-client-ca is given),
and pillion's bootstrap names the TLS either as the envoy_grpc cluster's transport_socket
(UpstreamTlsContext: trusted CA, SAN matchers, SNI, client certificate) or as google_grpc
ssl_credentials. Certificates are made with the openssl CLI once for the module."""
import re
import time

import pytest

from cert_helpers import make_certs
from conftest import free_port, run_pillion, until
from xds_helpers import bootstrap, clusters_yaml, listener_yaml, routes_yaml, served_by

ISTIOD_SAN = "spiffe://cluster.local/ns/istio-system/sa/istiod"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(
        tmp_path_factory.mktemp("xds-certs"), "ca ca", "ca otherca",
        f"leaf istiod ca 'DNS:istiod.istio-system.svc,DNS:localhost,URI:{ISTIOD_SAN}'",
        "leaf sidecar ca 'URI:spiffe://cluster.local/ns/default/sa/web'",
        "leaf stranger otherca 'URI:spiffe://cluster.local/ns/default/sa/web'")


def cluster_tls(certs, san=ISTIOD_SAN, client="sidecar", ca="ca", sni="istiod.istio-system.svc"):
    """The xds_cluster's transport_socket, as Istio's bootstrap writes it (files instead of SDS)."""
    cert = (f"""
          tls_certificates:
          - certificate_chain: {{ filename: {certs}/{client}.crt }}
            private_key: {{ filename: {certs}/{client}.key }}""" if client else "")
    return f"""    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: {sni}
        common_tls_context:{cert}
          validation_context:
            trusted_ca: {{ filename: {certs}/{ca}.crt }}
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: {{ exact: "{san}" }}
"""


def tls_bootstrap(port, transport):
    b = bootstrap(port)
    marker = "    load_assignment:\n      cluster_name: xds_cluster"
    assert marker in b
    return b.replace(marker, transport + marker)


def google_bootstrap(port, certs, host="istiod.istio-system.svc"):
    """google_grpc with ssl_credentials; the target's host name is checked by gRPC."""
    b = bootstrap(port)
    return b.replace(
        "    - envoy_grpc: { cluster_name: xds_cluster }",
        f"""    - google_grpc:
        target_uri: "dns:///{host}:{port}"
        stat_prefix: ads
        channel_credentials:
          ssl_credentials:
            root_certs: {{ filename: {certs}/ca.crt }}
            cert_chain: {{ filename: {certs}/sidecar.crt }}
            private_key: {{ filename: {certs}/sidecar.key }}""")


@pytest.fixture
def tls_cp(tmp_path, cp, upstream, certs):
    """pillion-cp with a listener -> RDS -> EDS cluster -> upstream u0, serving plaintext and
    TLS (client certificates from ca required); returns (cp, tls port, listener port)."""
    up = upstream("u0")
    lport = free_port()
    res = tmp_path / "res"
    res.mkdir()
    (res / "listeners.yaml").write_text(listener_yaml(lport))
    (res / "routes.yaml").write_text(routes_yaml())
    (res / "clusters.yaml").write_text(clusters_yaml([("demo_upstream", up.port)]))
    # port 0: pillion-cp binds a free one and logs it (no race with other ports picked here)
    c = cp(res, args=["--xds-tls-address", "127.0.0.1:0",
                      "--tls-cert", str(certs / "istiod.crt"),
                      "--tls-key", str(certs / "istiod.key"),
                      "--tls-client-ca", str(certs / "ca.crt")])
    m = until(lambda: re.search(r"serving xDS over TLS with client certificates on "
                                r"127\.0\.0\.1:0 \(port (\d+)\)", c.output()),
              10, "pillion-cp's TLS port")
    return c, int(m.group(1)), lport


def test_ads_over_mtls_with_san_check(pillion, tls_cp, certs):
    c, tport, lport = tls_cp
    px = pillion(tls_bootstrap(tport, cluster_tls(certs)))
    until(lambda: px.admin("/ready")[0] == 200, 15, "/ready 200 over TLS")
    served_by(lport, "u0")
    # the control plane lists the node with what it ACKed over the TLS stream
    n = c.node("sidecar-1", lambda n: n["types"]["rds"]["acked_version"] is not None)
    # and the identity of the client certificate the stream came with
    assert n["identity"] == "spiffe://cluster.local/ns/default/sa/web", n


@pytest.mark.parametrize("kind", ["wrong-san", "untrusted-server-ca", "no-client-cert",
                                  "client-cert-from-other-ca"])
def test_ads_over_tls_refuses_the_wrong_peer(pillion, tls_cp, certs, kind):
    """A control plane that is not the one named, or a sidecar without an accepted certificate:
    no stream, no configuration, /ready stays 503, and the proxy says why."""
    c, tport, lport = tls_cp
    transport = {
        "wrong-san": cluster_tls(certs, san="spiffe://cluster.local/ns/other/sa/impostor"),
        "untrusted-server-ca": cluster_tls(certs, ca="otherca"),
        "no-client-cert": cluster_tls(certs, client=None),
        "client-cert-from-other-ca": cluster_tls(certs, client="stranger"),
    }[kind]
    why = {"wrong-san": "matches none of match_typed_subject_alt_names",
           "untrusted-server-ca": "certificate verify failed"}.get(kind, "cannot reach")
    px = pillion(tls_bootstrap(tport, transport))
    until(lambda: why in px.output(), 10, f"the warning that says '{why}'")
    # long enough for several connection attempts (backoff starts at 0.5 s)
    for _ in range(6):
        assert px.admin("/ready")[0] == 503
        time.sleep(0.5)
    info = px.admin_json("/server_info")
    assert info["state"] != "LIVE", info
    assert not any(n["id"] == "sidecar-1" for n in c.status()["nodes"]), c.status()


def test_ads_over_tls_with_google_grpc_ssl_credentials(pillion, tls_cp, certs, monkeypatch):
    """google_grpc: gRPC's own check, the certificate must name the target's host (localhost is
    one of the control plane certificate's DNS names)."""
    # libgrpc's c-ares resolver (Debian's 1.51) leaves 10 bytes of libcares at exit, which
    # LeakSanitizer reports; its native resolver resolves localhost the same way
    monkeypatch.setenv("GRPC_DNS_RESOLVER", "native")
    c, tport, lport = tls_cp
    px = pillion(google_bootstrap(tport, certs, host="localhost"))
    until(lambda: px.admin("/ready")[0] == 200, 15, "/ready 200 over google_grpc TLS")
    served_by(lport, "u0")
    assert c.node("sidecar-1")["identity"] == "spiffe://cluster.local/ns/default/sa/web"


def test_google_grpc_checks_the_host_name(pillion, tls_cp, certs):
    """127.0.0.1 is not among the certificate's names: gRPC's host name check refuses it."""
    c, tport, lport = tls_cp
    px = pillion(google_bootstrap(tport, certs, host="127.0.0.1"))
    until(lambda: "Hostname Verification Check failed" in px.output(), 10, "the warning")
    for _ in range(6):
        assert px.admin("/ready")[0] == 503
        time.sleep(0.5)
    assert not any(n["id"] == "sidecar-1" for n in c.status()["nodes"]), c.status()


def test_tls_bootstrap_errors_name_the_field(tmp_path, certs):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(tls_bootstrap(free_port(), cluster_tls(certs).replace("sidecar.key",
                                                                        "missing.key")))
    r = run_pillion("--config-path", str(cfg), "--admin-address-path", str(tmp_path / "a"))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert ("static_resources.clusters[0].transport_socket.typed_config.common_tls_context."
            "tls_certificates[0].private_key.filename: cannot read") in out, out
    cfg.write_text(google_bootstrap(free_port(), certs).replace("sidecar.crt", "nope.crt"))
    r = run_pillion("--config-path", str(cfg), "--admin-address-path", str(tmp_path / "a"))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "google_grpc.channel_credentials.ssl_credentials" in out and "nope.crt" in out, out
