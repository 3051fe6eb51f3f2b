"""--mode validate and bootstrap loading: Envoy-format files accepted, broken ones rejected with
file:line:col and the field path of every error."""
import json
import os

from conftest import ROOT, run_pillion

EXAMPLE = os.path.join(ROOT, "examples", "bootstrap.yaml")

MINIMAL = """\
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  clusters:
  - name: web
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: web
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}
"""


def validate(tmp_path, text, name="bootstrap.yaml", *extra):
    p = tmp_path / name
    p.write_text(text)
    r = run_pillion("--mode", "validate", "--config-path", str(p), *extra)
    return r, str(p)


def test_example_is_valid():
    r = run_pillion("--mode", "validate", "--config-path", EXAMPLE)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_json_bootstrap_with_camel_case_names(tmp_path):
    doc = {
        "admin": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 0}}},
        "staticResources": {"clusters": [{
            "name": "web", "type": "STRICT_DNS", "connectTimeout": "1.5s", "lbPolicy": "LEAST_REQUEST",
            "loadAssignment": {"clusterName": "web", "endpoints": [{"lbEndpoints": [
                {"endpoint": {"address": {"socketAddress": {"address": "localhost", "portValue": "80"}}}}]}]}}]},
    }
    r, _ = validate(tmp_path, json.dumps(doc, indent=2), "b.json")
    assert r.returncode == 0, r.stderr


def test_every_error_is_reported_with_position_and_path(tmp_path):
    text = MINIMAL + """\
  - name: web
    type: STATIC
    lb_policy: NOT_A_POLICY
    bogus_field: 1
    connect_timeout: 1s
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: example.com, port_value: 80}}}
"""
    r, path = validate(tmp_path, text)
    assert r.returncode == 1
    err = r.stderr
    # the mapping errors: unknown enum name and unknown field, with line:col and path
    assert f"{path}:14:16: static_resources.clusters[1].lb_policy:" in err, err
    assert "NOT_A_POLICY" in err
    assert f"{path}:15:5: static_resources.clusters[1]" in err, err
    assert "bogus_field" in err
    assert "2 errors" in err or "errors" in err


def test_semantic_errors_are_all_reported(tmp_path):
    text = MINIMAL + """\
  - name: web
    connect_timeout: 1s
  - name: names
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: names
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: example.com, port_value: 80}}}
  listeners:
  - name: l1
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: missing}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""
    r, path = validate(tmp_path, text)
    assert r.returncode == 1
    err = r.stderr
    assert "duplicate cluster name 'web'" in err, err
    assert "static_resources.clusters[1].name" in err
    assert "example.com" not in err or "STATIC cluster 'names'" in err
    assert "STATIC cluster 'names'" in err and "static_resources.clusters[2]" in err
    assert "unknown cluster 'missing'" in err
    assert "route_config.virtual_hosts[0].routes[0].route.cluster" in err, err
    # every error line names the file and a line number
    lines = [l for l in err.splitlines() if l.startswith(path)]
    assert len(lines) >= 3, err


def test_unsupported_field_is_rejected_by_name(tmp_path):
    text = MINIMAL + """\
    health_checks:
    - timeout: 1s
      interval: 1s
      http_health_check: {path: /healthz}
"""
    r, path = validate(tmp_path, text)
    assert r.returncode == 1
    assert "field 'health_checks' of envoy.config.cluster.v3.Cluster is not supported" in r.stderr
    assert f"{path}:12:5: static_resources.clusters[0].health_checks" in r.stderr, r.stderr


def test_unsupported_extension_is_rejected(tmp_path):
    text = MINIMAL + """\
  listeners:
  - name: l1
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: not_a_filter
        typed_config:
          "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
          name: x
"""
    r, _ = validate(tmp_path, text)
    assert r.returncode == 1
    assert "'not_a_filter': extension type 'type.googleapis.com/envoy.config.cluster.v3.Cluster' is not supported" in r.stderr, r.stderr


def test_unknown_type_url(tmp_path):
    text = MINIMAL + """\
  listeners:
  - name: l1
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: f
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.nope.v3.Nope
"""
    r, _ = validate(tmp_path, text)
    assert r.returncode == 1
    assert "envoy.extensions.filters.network.nope.v3.Nope" in r.stderr


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    r, path = validate(tmp_path, "admin:\n  address: [unclosed\nnode: {}\n")
    assert r.returncode == 1
    assert path + ":" in r.stderr, r.stderr


def test_missing_file(tmp_path):
    r = run_pillion("--mode", "validate", "--config-path", str(tmp_path / "nope.yaml"))
    assert r.returncode == 1
    assert "nope.yaml" in r.stderr


def test_remote_admin_needs_flag(tmp_path):
    text = MINIMAL.replace("address: 127.0.0.1, port_value: 0}}\nstatic", "address: 0.0.0.0, port_value: 0}}\nstatic")
    r, _ = validate(tmp_path, text)
    assert r.returncode == 1
    assert "--admin-allow-remote" in r.stderr
    r, _ = validate(tmp_path, text, "b2.yaml", "--admin-allow-remote")
    assert r.returncode == 0, r.stderr


def test_config_yaml_merges_over_file(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text(MINIMAL)
    r = run_pillion("--mode", "validate", "--config-path", str(p), "--config-yaml",
                    "static_resources: {clusters: [{name: web, connect_timeout: 1s}]}")
    assert r.returncode == 1  # the merged clusters list has 'web' twice
    assert "duplicate cluster name 'web'" in r.stderr
    r = run_pillion("--mode", "validate", "--config-yaml", MINIMAL)
    assert r.returncode == 0, r.stderr


def test_bad_flags():
    r = run_pillion("--concurrency", "lots", "--config-yaml", MINIMAL)
    assert r.returncode == 1 and "--concurrency" in r.stderr
    r = run_pillion("--log-level", "loud", "--config-yaml", MINIMAL)
    assert r.returncode == 1 and "--log-level" in r.stderr
    r = run_pillion("--mode", "validate")
    assert r.returncode == 1 and "--config-path" in r.stderr


def test_access_log_format_errors_are_reported(tmp_path):
    text = MINIMAL + """\
  listeners:
  - name: l1
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: web
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {text_format_source: {inline_string: "%NOT_AN_OPERATOR% %RESPONSE_CODE%\\n"}}
"""
    r, path = validate(tmp_path, text)
    assert r.returncode == 1
    assert "NOT_AN_OPERATOR" in r.stderr, r.stderr
    assert f"{path}:22:11:" in r.stderr, r.stderr
