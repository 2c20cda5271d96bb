"""Make campaigns live the way people do: through the approval state machine.

Every test that issues coupons approves its campaigns here (never by writing
``campaign_states``): :func:`issuance.approval.take_live` submits as the first activity
approver of the project's roles file (``sql/roles.yaml``), has the needed approvals given
by other holders of the roles, and launches, each step with its audit log entry.
"""

from __future__ import annotations

from pathlib import Path

from issuance import approval
from project.campaign import Campaign
from project.roles import Roles, load_roles
from serving.db import ServingDB, connect

PROJECT = Path(__file__).resolve().parents[1] / "sql"
ROLES: Roles = load_roles(PROJECT)
"""The shipped roles (activity: ops.li, ops.zhou; budget: finance.zhao)."""


def make_live(db: ServingDB, *campaigns: Campaign, roles: Roles = ROLES) -> None:
    """Take each campaign to ``live`` (nothing for one already live with its definition)."""
    for campaign in campaigns:
        approval.take_live(db, campaign, roles)


def make_live_at(url: str, campaigns: object) -> None:
    """:func:`make_live` on the serving database at ``url`` (migrated first), for tests
    that hold a URL or a project rather than a connection; ``campaigns`` is a mapping of
    name to campaign or an iterable of campaigns."""
    from issuance.schema import migrate

    values = campaigns.values() if hasattr(campaigns, "values") else campaigns
    db = connect(url)
    try:
        migrate(db)
        make_live(db, *values)  # type: ignore[arg-type]
    finally:
        db.close()
