"""Test certificates made with the openssl CLI: P-256 CAs and leaves with the SANs a test needs.

make_certs(d, "ca ca", "leaf server ca 'DNS:server.test,IP:127.0.0.1'") writes ca.crt/ca.key and
server.crt/server.key (signed by ca, 30 days, serverAuth and clientAuth) into d."""
import subprocess

FUNCS = r"""
set -e
cd "$1"
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key \
    -out $1.crt -subj /CN=$1 -days 30 -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr \
    -subj /CN=$1
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$3" > $1.ext
  openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -days 30 -extfile $1.ext -out $1.crt
}
"""


def make_certs(d, *lines):
    """Runs the ca/leaf lines in directory d; returns d."""
    script = d / "gen.sh"
    script.write_text(FUNCS + "\n".join(lines) + "\n")
    subprocess.run(["sh", str(script), str(d)], check=True, capture_output=True, timeout=60)
    return d
