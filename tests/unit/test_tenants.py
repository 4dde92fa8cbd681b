"""One rule for a tenant id in every service: required, at most 128 printable characters."""

from __future__ import annotations

import pytest

from hartonomous.tenants import InvalidTenantId, parse_tenant_id


def test_surrounding_white_space_is_not_part_of_a_tenant_id() -> None:
    assert parse_tenant_id("  acme\t") == "acme"
    assert parse_tenant_id("x" * 128) == "x" * 128


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "tenant_id is required"),
        ("   ", "tenant_id is required"),
        ("a\nb", "printable"),
        ("x" * 129, "at most 128"),
    ],
)
def test_a_bad_tenant_id_is_refused_with_its_reason(raw: str, message: str) -> None:
    with pytest.raises(InvalidTenantId, match=message):
        parse_tenant_id(raw)
