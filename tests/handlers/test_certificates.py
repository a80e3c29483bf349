"""The webhook's own certificate, used when none is mounted: valid for its hosts, usable by TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509

from cloudsweep.handlers import certificates


def test_self_signed_certificate_names_its_hosts_and_loads(tmp_path: Path) -> None:
    cert, key = certificates.self_signed(
        ["cloudsweep-webhook.cloudsweep.svc", "127.0.0.1"], tmp_path
    )
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "cloudsweep-webhook.cloudsweep.svc" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)  # a TLS server can use them as they are
