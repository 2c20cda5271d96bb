"""Campaign files: both forms load to the same model; every error names file:line:col."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from issuance.clock import SHANGHAI
from kequn.errors import KequnError, KequnErrors, raise_collected
from kequn.settings import REPO_ROOT
from project.campaign import Campaign
from project.loader import load_project, read_definition
from project.model import Project

SQL = REPO_ROOT / "sql"


def load_campaign(path: Path) -> Campaign:
    """One campaign file on its own; its problems raised together."""
    return read_definition(path, "campaign")


def load_with(campaigns: Path, segments: Path = SQL / "segments") -> Project:
    """A project of the campaigns in ``campaigns`` (and the repository's tags, and
    ``segments``)."""
    return load_project(campaigns.parent, folders={"campaign": campaigns, "segment": segments,
                                                   "tag": SQL / "tags"})


def load_campaigns(folder: Path) -> dict[str, Campaign]:
    """The campaigns of ``folder`` against the repository's segments; problems raised."""
    project = load_with(folder)
    raise_collected(project.problems("campaign"))
    return project.campaigns

YAML = """\
name: wake
rules: thirty days free
owner: team:growth
type: wake_up
target_segment: wake_up
channels: [APP, H5]
window_start: 2026-01-01
window_end: 2026-01-31
interest_free_days: 30
validity_starts_after_days: 1
validity_days: 30
total_stock: 100
daily_limit: 10
"""

HEADER = """\
-- a drawdown discount
CAMPAIGN (
  name draw,
  type drawdown,
  target_segment drawdown,
  window_start '2026-01-01 08:00:00',
  window_end '2026-02-01 00:00:00',
  rate_discount 0.8,
  validity_from 2026-01-01,
  validity_to 2026-03-31,
  total_stock 5,
  per_customer_limit 2,
  stacking stackable,
  on_failed_drawdown restore,
);
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_campaign_loads_with_defaults(tmp_path: Path) -> None:
    campaign = load_campaign(write(tmp_path, "wake.yaml", YAML))
    assert campaign.name == "wake"
    assert campaign.template.kind == "interest_free_days" and campaign.template.value == 30
    assert campaign.channels == frozenset({"APP", "H5"})
    assert campaign.window_start == datetime(2026, 1, 1, tzinfo=SHANGHAI)
    # a date end is inclusive: the window closes at the start of the next day
    assert campaign.window_end == datetime(2026, 2, 1, tzinfo=SHANGHAI)
    assert (campaign.per_customer_limit, campaign.stacking, campaign.on_failed_drawdown) == (
        1, "exclusive", "void")
    assert campaign.effective_daily_limit == 10
    issued = datetime(2026, 1, 5, 12, 0, tzinfo=SHANGHAI)
    assert campaign.validity.period(issued) == (issued + timedelta(days=1),
                                                issued + timedelta(days=31))


def test_header_campaign_loads(tmp_path: Path) -> None:
    campaign = load_campaign(write(tmp_path, "draw.sql", HEADER))
    assert campaign.template.kind == "rate_discount"
    assert campaign.template.value == Decimal("0.8")
    assert campaign.window_start == datetime(2026, 1, 1, 8, tzinfo=SHANGHAI)
    assert campaign.window_end == datetime(2026, 2, 1, tzinfo=SHANGHAI)
    assert campaign.validity.period(datetime(2026, 1, 9, tzinfo=SHANGHAI)) == (
        datetime(2026, 1, 1, tzinfo=SHANGHAI), datetime(2026, 4, 1, tzinfo=SHANGHAI))
    assert campaign.effective_daily_limit == 5  # no daily limit: the stock caps it
    assert not campaign.exclusive and campaign.on_failed_drawdown == "restore"


def test_repository_demo_campaigns_load() -> None:
    campaigns = load_campaigns(REPO_ROOT / "sql" / "campaigns")
    wake = next(c for c in campaigns.values() if c.target_segment == "wake_up")
    assert wake.template.kind == "interest_free_days" and wake.template.value == 30
    draw = next(c for c in campaigns.values() if c.type == "drawdown")
    assert draw.template.value == Decimal("0.8")


def test_yaml_errors_are_collected_with_positions(tmp_path: Path) -> None:
    bad = YAML.replace("type: wake_up", "type: wakeup").replace(
        "rate_discount", "x").replace("total_stock: 100", "total_stock: many").replace(
        "channels: [APP, H5]", "channels: [APP, WEB]")
    path = write(tmp_path, "bad.yaml", bad)
    with pytest.raises(KequnErrors) as caught:
        load_campaign(path)
    headlines = [e.headline() for e in caught.value.errors]
    assert headlines == [
        f"{path}:4:7: 'type' must be one of wake_up, credit, drawdown, not 'wakeup' "
        "(did you mean 'wake_up'?)",
        f"{path}:6:11: unknown channel 'WEB' (channels: APP, MINI_PROGRAM, H5 or all)",
        f"{path}:12:14: 'total_stock' must be a whole number, not 'many'",
    ]


def test_unknown_yaml_key_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", YAML.replace("daily_limit", "dialy_limit"))
    with pytest.raises(KequnError) as caught:
        load_campaign(path)
    assert caught.value.headline() == (
        f"{path}:13:1: unknown key 'dialy_limit' (did you mean 'daily_limit'?)")


def test_header_errors_point_at_values(tmp_path: Path) -> None:
    bad = HEADER.replace("rate_discount 0.8", "rate_discount 1.5").replace(
        "validity_to 2026-03-31", "validity_to 2025-12-31")
    path = write(tmp_path, "bad.sql", bad)
    with pytest.raises(KequnErrors) as caught:
        load_campaign(path)
    assert [e.headline() for e in caught.value.errors] == [
        f"{path}:8:17: 'rate_discount' must lie strictly between 0 and 1, not 1.5",
        f"{path}:10:15: validity ends (2025-12-31) before it starts (2026-01-01)",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("window_end: 2026-01-31", "window_end: 2025-12-01"),
         "8:13: the campaign window ends before it starts"),
        (("interest_free_days: 30", "interest_free_days: 30\nrate_discount: 0.5"),
         "10:16: a coupon is one of 'interest_free_days', 'rate_discount' or 'amount_off', not "
         "'interest_free_days' and 'rate_discount'"),
        (("validity_days: 30", "validity_to: 2026-05-01"),
         "10:29: validity is either fixed"),
        (("owner: team:growth", "owner: growth"),
         "3:8: owner 'growth' is not a team: write 'team:<department>'"),
        (("name: wake", "name: Wake-Up"),
         "1:7: campaign name 'Wake-Up' is not snake_case"),
        (("daily_limit: 10", "daily_limit: 0"),
         "13:14: 'daily_limit' must be at least 1, not 0"),
        (("window_start: 2026-01-01", "window_start: soon"),
         "7:15: 'window_start' must be a date (YYYY-MM-DD) or a time"),
    ],
)
def test_yaml_validation_messages(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = write(tmp_path, "c.yaml", YAML.replace(*change))
    with pytest.raises(KequnError) as caught:
        load_campaign(path)
    assert caught.value.headline().startswith(f"{path}:{message}")


def test_missing_template_and_validity(tmp_path: Path) -> None:
    text = "\n".join(line for line in YAML.splitlines()
                     if not line.startswith(("interest_free", "validity_")))
    path = write(tmp_path, "c.yaml", text)
    with pytest.raises(KequnErrors) as caught:
        load_campaign(path)
    assert [e.message.split(":")[0] for e in caught.value.errors] == [
        "campaign has no coupon template", "campaign has no validity"]
    assert all(e.line == 1 for e in caught.value.errors)


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "name: wake\ntype: [wake_up\n")
    with pytest.raises(KequnError) as caught:
        load_campaign(path)
    assert caught.value.headline().startswith(f"{path}:3:1: invalid YAML")


def test_header_without_header_shows_sample(tmp_path: Path) -> None:
    path = write(tmp_path, "c.sql", "SELECT 1;")
    with pytest.raises(KequnError) as caught:
        load_campaign(path)
    assert "expected a CAMPAIGN header" in caught.value.message
    assert "CAMPAIGN (\n  name wake_up_30d" in caught.value.message


def test_duplicate_names_and_bad_files_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", YAML)
    write(tmp_path, "b.yaml", YAML)
    write(tmp_path, "c.sql", HEADER.replace("total_stock 5", "total_stock 0"))
    with pytest.raises(KequnErrors) as caught:
        load_campaigns(tmp_path)
    messages = [e.headline() for e in caught.value.errors]
    assert messages == [
        f"{tmp_path / 'b.yaml'}:1:7: campaign 'wake' is also defined in a.yaml",
        f"{tmp_path / 'c.sql'}:11:15: 'total_stock' must be at least 1, not 0",
    ]


def test_channels_all_and_fixed_validity_inside_window(tmp_path: Path) -> None:
    text = YAML.replace("channels: [APP, H5]", "channels: all").replace(
        "validity_starts_after_days: 1\nvalidity_days: 30",
        "validity_from: 2026-01-01\nvalidity_to: 2026-01-30")
    path = write(tmp_path, "c.yaml", text)
    with pytest.raises(KequnError) as caught:
        load_campaign(path)
    assert caught.value.headline() == (
        f"{path}:11:14: validity ends (2026-01-30) before the campaign window does")
    campaign = load_campaign(write(tmp_path, "d.yaml", text.replace("2026-01-30", "2026-01-31")))
    assert campaign.channels == frozenset({"APP", "MINI_PROGRAM", "H5"})
    assert campaign.validity.fixed_to == date(2026, 1, 31)


def test_targets_must_exist_be_synced_and_shared(tmp_path: Path) -> None:
    segments = tmp_path / "segments"
    segments.mkdir()
    (segments / "granted.sql").write_text(
        "SEGMENT (\n  name granted,\n  kind rule,\n  owner 'team:risk',\n"
        "  shared_with (team:ops),\n  rule 'credit_granted',\n  sync on,\n);\n")
    (segments / "quiet.sql").write_text(
        "SEGMENT (\n  name quiet,\n  kind rule,\n  owner 'team:growth',\n"
        "  rule 'credit_granted',\n);\n")
    folder = tmp_path / "campaigns"
    folder.mkdir()
    write(folder, "a.yaml", YAML.replace("target_segment: wake_up", "target_segment: grantd"))
    write(folder, "b.yaml", YAML.replace("name: wake", "name: b").replace(
        "target_segment: wake_up", "target_segment: quiet"))
    write(folder, "c.yaml", YAML.replace("name: wake", "name: c").replace(
        "target_segment: wake_up", "target_segment: granted"))
    write(folder, "d.yaml", YAML.replace("name: wake", "name: d").replace(
        "target_segment: wake_up", "target_segment: granted").replace("team:growth", "team:ops"))
    errors = load_with(folder, segments).problems("campaign")
    assert [e.headline() for e in errors] == [
        f"{folder / 'a.yaml'}:5:17: campaign 'wake' targets unknown segment 'grantd' "
        "(did you mean 'granted'?)",
        f"{folder / 'b.yaml'}:5:17: segment 'quiet' is not synced, so no customer is ever "
        f"eligible for campaign 'b' (add 'sync on' to the SEGMENT header in "
        f"{segments / 'quiet.sql'})",
        f"{folder / 'c.yaml'}:3:8: segment 'granted' is not shared with team:growth "
        "(owner team:risk; shared with team:ops) (kequn segments share granted team:growth)",
    ]


def test_repository_campaigns_target_synced_shared_segments() -> None:
    project = load_project(SQL)
    assert project.problems("campaign") == [] and len(project.campaigns) == 3


def test_scope_bounds_and_budget_default_for_existing_campaigns(tmp_path: Path) -> None:
    campaign = load_campaign(write(tmp_path, "c.yaml", YAML))
    assert campaign.scope.activity == "all"
    assert campaign.scope.asset_parties is None and campaign.scope.customer_types is None
    assert (campaign.bounds.max_principal, campaign.bounds.max_term,
            campaign.bounds.max_rate) == (Decimal("200000"), 36, Decimal("0.24"))
    assert campaign.budget is None
    # 30 free days at the default bounds: P·r·D/28 = 200000 * 0.02 * 30/28 = 4285.714..
    # plus one cent per period (36) for rounding, rounded up: 4286.08.
    assert campaign.max_reduction == Decimal("4286.08")
    for shipped in load_campaigns(SQL / "campaigns").values():
        assert shipped.scope.activity == "all" and shipped.budget is None


def test_scope_fields_and_amount_off(tmp_path: Path) -> None:
    text = YAML.replace("interest_free_days: 30", "amount_off: 88.50") + (
        "activity_scope: first_drawdown_in_window\nasset_parties: [KQ_SELF]\n"
        "funding_parties: all\ncustomer_types: [STAFF, OFFLINE]\n"
        "credit_methods: PRE_APPROVED\nmax_principal: 50000\nmax_term: 12\n"
        "max_rate: 0.18\nbudget: 100000\nexpected_use_rate: 0.25\n")
    campaign = load_campaign(write(tmp_path, "c.yaml", text))
    assert campaign.template.kind == "amount_off"
    assert campaign.template.describe() == "88.50 off the interest"
    assert campaign.max_reduction == Decimal("88.50")
    scope = campaign.scope
    assert (scope.activity, scope.asset_parties, scope.funding_parties, scope.customer_types,
            scope.credit_methods) == ("first_drawdown_in_window", frozenset({"KQ_SELF"}), None,
                                      frozenset({"STAFF", "OFFLINE"}),
                                      frozenset({"PRE_APPROVED"}))
    assert campaign.budget == Decimal("100000")
    assert campaign.bounds.max_term == 12


@pytest.mark.parametrize(("extra", "message"), [
    ("customer_types: [STAF]", "14:17: unknown customer_types value 'STAF'"),
    ("activity_scope: first", "14:17: 'activity_scope' must be one of"),
    ("budget: -5", "14:9: 'budget' must be a positive amount"),
    ("max_rate: 0", "14:11: 'max_rate' must be an annual rate"),
    ("amount_off: 10", "14:13: a coupon is one of 'interest_free_days', 'rate_discount' or "
                       "'amount_off', not 'interest_free_days' and 'amount_off'"),
])
def test_scope_field_errors(tmp_path: Path, extra: str, message: str) -> None:
    path = write(tmp_path, "c.yaml", YAML + extra + "\n")
    with pytest.raises(KequnError) as caught:
        load_campaign(path)
    assert caught.value.headline().startswith(f"{path}:{message}")
