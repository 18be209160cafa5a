"""PII outside the vendors' exact key paths is dropped too (SPEC §8).

The scrubber used to drop only the listed paths, case for case: a UJET record with
``End_User: {identifier: ...}``, ``agent_info.Name`` and ``agent_info.email``,
``transfers[].end_user`` or ``participants[].phone_number`` landed them verbatim. The paths' keys
now match in any case, and a key named as PII (:data:`connectors.pii.PII_NAMES`) is dropped at
any depth; the hash paths keep their hash. Free text is not scrubbed (docs/operations.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import SecretStr

from connectors.landing import PiiScrubber, pii_hash
from connectors.sync import sync_source
from connectors.vendors.mindful.client import PII_DROP as MINDFUL_DROP
from connectors.vendors.mindful.client import PII_HASH as MINDFUL_HASH
from connectors.vendors.ujet.client import PII_DROP, PII_HASH, UJET, prepare
from tests.connectors import ujet_support

SECRET = SecretStr("test-hmac-key")
UJET_SCRUB = PiiScrubber(drop=PII_DROP, hash_paths=PII_HASH, secret=SECRET)
#: What a vendor could put in a record beyond its documented paths (no planted value is a
#: substring of another, nor of anything the emulator serves).
PLANTED = {
    "End_User": {"identifier": "+1 555 000 1111", "out_contact_id": "PII-OUT-7"},
    "customer": {"Email": "pat.pii@example.org", "mobileNumber": "+1 555 000 2222"},
    "IP-Address": "203.0.113.77",
}


def _planted(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with PII in places no path names."""
    agent = (record.get("agent_info") or {}) | {"Name": "Jane PIIDOE", "email": "jane@pii.test"}
    transfers = [t | {"end_user": {"identifier": "+1 555 000 3333"}} for t in record["transfers"]]
    participants = [p | {"phone_number": "+1 555 000 4444"} for p in record["participants"]]
    free = "caller asked for John PIIFREE"  # free text: kept, as the docs say
    return record | PLANTED | {"agent_info": agent, "transfers": transfers} | {
        "participants": participants, "fail_details": free
    }  # fmt: skip


def test_pii_beyond_the_paths_never_lands_and_the_phone_stays_hashed(tmp_path: Path) -> None:
    emu = ujet_support.emulator(ujet_support.small_contacts())
    for endpoint in ("calls", "chats"):
        for record in emu.records(endpoint):  # served as the vendor could send them
            emu.replace_raw_record(endpoint, _planted(record))
    phones = {r["id"]: prepare(r)["caller_phone_hmac"] for r in emu.records("calls")}
    assert any(phones.values())
    with emu:
        settings = ujet_support.settings_for(emu)
        reports = sync_source(
            UJET, settings, landing_root=tmp_path / "l", state_root=tmp_path / "s"
        )
    assert [r.error for r in reports if not r.ok] == []
    text = "\n".join(t for _, t in ujet_support.texts_under(tmp_path / "l"))
    for value in ("555 000", "PII-OUT", "pii.test", "example.org", "PIIDOE", "203.0.113"):
        assert value not in text
    assert "PIIFREE" in text  # free text cannot be told apart from any other text
    assert ujet_support.synced(tmp_path / "l").height > 0  # the mapping still reads its fields
    payloads = [json.loads(line) for line in _payloads(tmp_path / "l")]
    calls = {p["id"]: p for p in payloads if p["id"] in phones}
    for rid, phone in phones.items():
        digits = "".join(c for c in phone or "" if c.isdigit())
        expected = pii_hash(digits, SecretStr(ujet_support.PII_SECRET)) if phone else None
        assert calls[rid]["caller_phone_hmac"] == expected


def _payloads(landing: Path) -> list[str]:
    files = sorted(landing.rglob("*.parquet"))
    return [p for f in files for p in pl.read_parquet(f, columns=["payload"])["payload"]]


def test_the_paths_keys_match_in_any_case() -> None:
    record = {
        "id": 1,
        "END_USER": {"identifier": "+15550001111"},
        "Agent_Info": {"id": 7, "First_Name": "Ann", "AVATAR_URL": "https://x.test/a.png"},
        "queue": {"name": "Billing"},
    }
    assert UJET_SCRUB(prepare(record)) == {
        "id": 1,
        "Agent_Info": {"id": 7},
        "queue": {"name": "Billing"},
        "caller_phone_hmac": None,
    }


@pytest.mark.parametrize(
    "key",
    [
        *("email", "Email_Address", "phone", "phoneNumber", "MOBILE", "ani", "end_user"),
        *("endUserId", "first_name", "lastName", "middle-name", "ip_address", "out_contact_id"),
        "avatar_url",
    ],
)
def test_a_pii_name_is_dropped_at_any_depth(key: str) -> None:
    record = {"id": 1, "a": [{"b": {key: "x@pii", "kept": 2}}], key: "y@pii", "queue": {"n": 1}}
    assert UJET_SCRUB(record) == {"id": 1, "a": [{"b": {"kept": 2}}], "queue": {"n": 1}}


def test_a_hash_path_named_as_pii_keeps_its_hash_and_its_namesakes_go() -> None:
    scrub = PiiScrubber(drop=MINDFUL_DROP, hash_paths=MINDFUL_HASH, secret=SECRET)
    record = {"id": "a", "phoneNumber": "+1 555 0100", "contact": {"phoneNumber": "+1 555 0199"}}
    assert scrub(record) == {"id": "a", "phoneNumber": pii_hash("15550100", SECRET), "contact": {}}
    assert scrub({"id": "b", "PhoneNumber": "+1 555 0100", "ANI": "5550100"}) == {
        "id": "b",
        "PhoneNumber": pii_hash("15550100", SECRET),
    }
    assert scrub({"id": "c", "phoneNumber": None}) == {"id": "c", "phoneNumber": None}


def test_a_record_without_pii_is_not_copied_and_the_input_never_changed() -> None:
    inner = {"queue": {"name": "Support"}, "items": [{"n": 1}]}
    record = {"id": 1, "agent_info": {"id": 2}, "caller_phone_hmac": None, "x": inner}
    out = UJET_SCRUB(record)
    assert out == record
    assert out["x"] is inner
    planted = _planted({"id": 2, "transfers": [{"a": 1}], "participants": [{"b": 2}]})
    before = json.dumps(planted)
    UJET_SCRUB(planted)
    assert json.dumps(planted) == before
