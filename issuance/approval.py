"""Campaign approval (活动中心): ``draft → pending_approval → approved → live → ended``.

A campaign with a budget spends money, so it needs two approvals before it may issue:
the activity (by an ``activity_approvers`` holder) and the budget (by a
``budget_approvers`` holder), each by a user other than the one who submitted it
(maker-checker; roles from :mod:`project.roles`). A campaign without a budget needs only
the activity approval. Only a ``live`` campaign with a budget issues (the issue path
checks :func:`is_live` under the campaign's lock); campaigns without a budget issue as
before (the shipped ones: they have no budget).

Every change is one transaction with exactly one ``audit_log`` entry (who, what, when,
the hashes of the state before and after). A refused change raises a
:class:`~kequn.errors.ValidationError` saying why, and writes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kequn.errors import Location, ValidationError
from project.campaign import Campaign
from project.roles import Roles
from serving import audit
from serving.db import ServingDB, utcnow

APPROVALS = {"activity": "activity_approvers", "budget": "budget_approvers"}


@dataclass(frozen=True)
class CampaignState:
    """A campaign's approval state (``draft`` when nothing was recorded)."""

    campaign: str
    state: str = "draft"
    submitted_by: str | None = None
    activity_approved_by: str | None = None
    budget_approved_by: str | None = None
    definition_hash: str | None = None


def read_state(db: ServingDB, campaign: str, *, lock: bool = False) -> CampaignState:
    """The recorded state of ``campaign`` (``draft`` if none)."""
    suffix = " FOR UPDATE" if lock and db.dialect == "postgresql" else ""
    row = db.fetchone("SELECT state, submitted_by, activity_approved_by, budget_approved_by, "
                      f"definition_hash FROM campaign_states WHERE campaign = ?{suffix}",
                      (campaign,))
    return CampaignState(campaign, *row) if row else CampaignState(campaign)


def is_live(db: ServingDB, campaign: str) -> bool:
    """Whether the campaign's recorded state is ``live``."""
    return db.scalar("SELECT state FROM campaign_states WHERE campaign = ?",
                     (campaign,)) == "live"


def _write(db: ServingDB, before: CampaignState, after: CampaignState, user: str,
           action: str, detail: str) -> CampaignState:
    now = utcnow()
    db.execute(
        "INSERT INTO campaign_states (campaign, state, submitted_by, activity_approved_by, "
        "budget_approved_by, definition_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (campaign) DO UPDATE SET state = excluded.state, "
        "submitted_by = excluded.submitted_by, "
        "activity_approved_by = excluded.activity_approved_by, "
        "budget_approved_by = excluded.budget_approved_by, "
        "definition_hash = excluded.definition_hash, updated_at = excluded.updated_at",
        (after.campaign, after.state, after.submitted_by, after.activity_approved_by,
         after.budget_approved_by, after.definition_hash, now))
    audit.record(db, user, action, f"campaign:{after.campaign}", before=asdict(before),
                 after=asdict(after), detail=detail, at=now)
    return after


def _refuse(message: str, hint: str = "") -> ValidationError:
    return ValidationError(message, Location(), hint=hint)


def _change(db: ServingDB, campaign: Campaign, user: str, action: str, source: tuple[str, ...],
            build, detail: str = "") -> CampaignState:  # type: ignore[no-untyped-def]
    user = audit.require_user(user)
    with db.transaction():
        before = read_state(db, campaign.name, lock=True)
        if before.state not in source:
            raise _refuse(f"campaign '{campaign.name}' is {before.state}; '{action}' needs "
                          f"it {' or '.join(source)}")
        after = build(before)
        return _write(db, before, after, user, action, detail)


def submit(db: ServingDB, campaign: Campaign, user: str) -> CampaignState:
    """``draft → pending_approval``; ``user`` becomes the submitter."""
    return _change(db, campaign, user, "campaign_submit", ("draft",), lambda s: CampaignState(
        campaign.name, "pending_approval", audit.require_user(user), None, None,
        campaign.definition_hash))


def needed(campaign: Campaign) -> tuple[str, ...]:
    """The approvals ``campaign`` needs: activity, and budget when it has one."""
    return ("activity", "budget") if campaign.budget is not None else ("activity",)


def approve(db: ServingDB, campaign: Campaign, user: str, what: str,
            roles: Roles) -> CampaignState:
    """Record the ``what`` (``activity`` or ``budget``) approval by ``user``; once every
    needed approval is in, the campaign is ``approved``.

    Refused: the wrong state, ``user`` is the submitter, ``user`` does not hold the role,
    the approval is not needed or already given.
    """
    if what not in APPROVALS:
        raise _refuse(f"approve what? 'activity' or 'budget', not '{what}'")
    if what not in needed(campaign):
        raise _refuse(f"campaign '{campaign.name}' has no budget; it needs no budget approval")
    role = APPROVALS[what]
    user = audit.require_user(user)

    def build(before: CampaignState) -> CampaignState:
        if user == before.submitted_by:
            raise _refuse(f"{user} submitted campaign '{campaign.name}' and cannot approve "
                          f"its {what} (maker-checker: another user must)")
        if not roles.may(user, role):
            raise _refuse(f"{user} may not approve a campaign's {what}",
                          hint=f"{role} in {roles.path}: {', '.join(roles.who(role)) or 'none'}")
        if getattr(before, f"{what}_approved_by"):
            raise _refuse(f"campaign '{campaign.name}' {what} is already approved by "
                          f"{getattr(before, f'{what}_approved_by')}")
        values = asdict(before) | {f"{what}_approved_by": user}
        done = all(values[f"{w}_approved_by"] for w in needed(campaign))
        values["state"] = "approved" if done else "pending_approval"
        return CampaignState(**values)

    return _change(db, campaign, user, f"campaign_approve_{what}", ("pending_approval",),
                   build)


def reject(db: ServingDB, campaign: Campaign, user: str, reason: str,
           roles: Roles) -> CampaignState:
    """``pending_approval → draft`` (approvals cleared) by an approver who is not the
    submitter."""
    user = audit.require_user(user)

    def build(before: CampaignState) -> CampaignState:
        if user == before.submitted_by:
            raise _refuse(f"{user} submitted campaign '{campaign.name}' and cannot reject it")
        if not any(roles.may(user, r) for r in APPROVALS.values()):
            raise _refuse(f"{user} may not reject a campaign (not an approver)")
        return CampaignState(campaign.name, "draft", None, None, None, before.definition_hash)

    return _change(db, campaign, user, "campaign_reject", ("pending_approval",), build,
                   detail=reason)


def launch(db: ServingDB, campaign: Campaign, user: str) -> CampaignState:
    """``approved → live``: the campaign may issue."""
    return _change(db, campaign, user, "campaign_launch", ("approved",),
                   lambda s: CampaignState(**(asdict(s) | {"state": "live"})))


def end(db: ServingDB, campaign: Campaign, user: str) -> CampaignState:
    """``live → ended``: no more issues."""
    return _change(db, campaign, user, "campaign_end", ("live",),
                   lambda s: CampaignState(**(asdict(s) | {"state": "ended"})))
