"""Upstream clusters: DNS host sets, health, cluster stats (src/upstream)."""
import time

from conftest import run_pillion


def config(admin_port=0):
    return f"""
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}
static_resources:
  clusters:
  - name: dns
    type: STRICT_DNS
    dns_lookup_family: V4_ONLY
    dns_refresh_rate: 1s
    load_assignment:
      cluster_name: dns
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: localhost, port_value: 8080}}}}}}
  - name: logical
    type: LOGICAL_DNS
    dns_lookup_family: V4_ONLY
    load_assignment:
      cluster_name: logical
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: localhost, port_value: 9090}}}}}}
  - name: static
    lb_policy: MAGLEV
    load_assignment:
      cluster_name: static
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 8081}}}}}}
          load_balancing_weight: 3
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 8082}}}}}}
          health_status: UNHEALTHY
"""


def wait_for(fn, timeout=5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


def test_dns_clusters_resolve_and_show_in_admin(pillion):
    p = pillion(config())

    def clusters():
        _, _, body = p.admin("/clusters")
        return body if "dns::127.0.0.1:8080::weight::1" in body else None

    body = wait_for(clusters)
    assert body, p.admin("/clusters")[2]
    assert "logical::127.0.0.1:9090::health_flags::healthy" in body
    assert "static::127.0.0.1:8081::weight::3" in body
    assert "static::127.0.0.1:8082::health_flags::/failed_eds_health" in body
    js = p.admin_json("/clusters?format=json")
    names = [c["name"] for c in js["cluster_statuses"]]
    assert sorted(names) == ["dns", "logical", "static"]
    _, _, stats = p.admin("/stats?filter=^cluster\\.")
    for line in ["cluster.dns.membership_total: 1", "cluster.dns.membership_healthy: 1",
                 "cluster.static.membership_total: 2", "cluster.static.membership_healthy: 1",
                 "cluster.static.upstream_rq_total: 0", "cluster.static.upstream_cx_total: 0",
                 "cluster.static.lb_healthy_panic: 0"]:
        assert line in stats, stats
    assert p.stop() == 0


def test_lb_config_limits_are_validated(tmp_path):
    bad = config().replace("    lb_policy: MAGLEV\n",
                           "    lb_policy: MAGLEV\n    maglev_lb_config: {table_size: 1000}\n")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    r = run_pillion("--mode", "validate", "--config-path", str(path))
    assert r.returncode == 1
    assert "table_size must be a prime number" in r.stderr + r.stdout


def test_priority_other_than_zero_is_rejected(tmp_path):
    bad = config().replace("      - lb_endpoints:\n        - endpoint: {address: {socket_address: "
                           "{address: 127.0.0.1, port_value: 8081}}}",
                           "      - priority: 1\n        lb_endpoints:\n        - endpoint: "
                           "{address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}")
    assert "priority: 1" in bad
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    r = run_pillion("--mode", "validate", "--config-path", str(path))
    assert r.returncode == 1
    assert "priority 1 is not supported" in r.stderr + r.stdout
