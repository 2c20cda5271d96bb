"""Campaign approval (活动中心): ``draft → pending_approval → approved → live → ended``.

Only a ``live`` campaign issues, every campaign alike (single issues, the batch, rules'
``issue_coupon`` actions): anything else is refused ``not_live`` (:func:`live_refusal`,
read under the campaign's locks by the issue path). Before it is live a campaign needs
the activity approval (by an ``activity_approvers`` holder) and, when it has a budget,
the budget approval (by a ``budget_approvers`` holder), each by a user other than the one
who submitted it (maker-checker; roles from :mod:`project.roles`).

The approval is of one definition: the campaign file's hash at submission is kept in
``campaign_states``; approve and launch refuse a changed file, and a live campaign whose
file changed since is refused ``not_live`` at issue ("the definition changed since
approval") until it is submitted again (allowed from any state but ``ended`` once the
file changed; the approvals start over) and approved again.

Every change is one transaction with exactly one ``audit_log`` entry (who, what, when,
the hashes of the state before and after). A refused change raises a
:class:`~kequn.errors.ValidationError` saying why, and writes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from issuance import locks
from issuance.limits import NOT_LIVE
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


def changed_since_approval(state: CampaignState, campaign: Campaign) -> bool:
    """Whether the campaign's file changed since it was submitted for the recorded
    approvals (never for a draft: there is nothing approved)."""
    return state.state != "draft" and state.definition_hash != campaign.definition_hash


def why_not_live(state: CampaignState, campaign: Campaign) -> str | None:
    """Why ``campaign`` may not issue in ``state`` (one line for people), or None."""
    if changed_since_approval(state, campaign) and state.state != "ended":
        return (f"the definition changed since approval (approved {state.definition_hash}, "
                f"file now {campaign.definition_hash}): submit and approve it again")
    if state.state == "live":
        return None
    steps = {"draft": "submit, approve and launch it", "pending_approval": "approve and "
             "launch it", "approved": "launch it", "ended": "it ended"}
    return f"the campaign is {state.state} ({steps.get(state.state, '')})"


def lock_campaign_shared(db: ServingDB, campaign: str) -> None:
    """PostgreSQL: hold ``campaign``'s advisory lock shared until the transaction ends, so
    a state change (which takes it exclusive) waits for the issues in flight and they wait
    for it. A lock in memory: unlike ``FOR SHARE`` on the state row, concurrent issues
    write nothing to take it. (No-op on SQLite.)"""
    if db.dialect == "postgresql":
        db.execute("SELECT pg_advisory_xact_lock_shared(?, ?)",
                   (locks.CAMPAIGN, locks.lock_key(campaign)))


def live_refusal(db: ServingDB, campaign: Campaign, *, lock: bool = False) -> str | None:
    """``not_live`` unless ``campaign`` is live with the definition that was approved.

    With ``lock`` (inside an issue's transaction) PostgreSQL first takes the campaign's
    lock shared (:func:`lock_campaign_shared`), so a concurrent submit, launch or end
    waits until the issue committed, and the state read is the latest committed one.
    """
    if lock:
        lock_campaign_shared(db, campaign.name)
    row = db.fetchone("SELECT state, definition_hash FROM campaign_states "
                      "WHERE campaign = ?", (campaign.name,))
    if row is None or row[0] != "live" or row[1] != campaign.definition_hash:
        return NOT_LIVE
    return None


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
        if db.dialect == "postgresql":  # waits for the issues in flight (live_refusal)
            db.execute("SELECT pg_advisory_xact_lock(?, ?)",
                       (locks.CAMPAIGN, locks.lock_key(campaign.name)))
        before = read_state(db, campaign.name, lock=True)
        if before.state not in source:
            raise _refuse(f"campaign '{campaign.name}' is {before.state}; '{action}' needs "
                          f"it {' or '.join(source)}")
        after = build(before)
        return _write(db, before, after, user, action, detail)


def submit(db: ServingDB, campaign: Campaign, user: str) -> CampaignState:
    """``draft → pending_approval``; ``user`` becomes the submitter of the file as it is
    now (its hash is recorded). A campaign whose file changed since its submission may be
    submitted again from ``pending_approval``, ``approved`` or ``live``: the approvals
    start over (and a live one stops issuing until approved and launched again)."""
    user = audit.require_user(user)

    def build(before: CampaignState) -> CampaignState:
        if before.state != "draft" and not changed_since_approval(before, campaign):
            raise _refuse(f"campaign '{campaign.name}' is {before.state} and its file has not "
                          "changed since it was submitted; nothing to submit")
        return CampaignState(campaign.name, "pending_approval", user, None, None,
                             campaign.definition_hash)

    return _change(db, campaign, user, "campaign_submit",
                   ("draft", "pending_approval", "approved", "live"), build)


def _same_definition(before: CampaignState, campaign: Campaign, action: str) -> None:
    if changed_since_approval(before, campaign):
        raise _refuse(f"campaign '{campaign.name}' changed since it was submitted "
                      f"({before.definition_hash} -> {campaign.definition_hash}); cannot "
                      f"{action} a definition nobody submitted",
                      hint=f"kequn --as USER campaigns submit {campaign.name}")


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
        _same_definition(before, campaign, "approve")
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
    def build(before: CampaignState) -> CampaignState:
        _same_definition(before, campaign, "launch")
        return CampaignState(**(asdict(before) | {"state": "live"}))

    return _change(db, campaign, user, "campaign_launch", ("approved",), build)


def end(db: ServingDB, campaign: Campaign, user: str) -> CampaignState:
    """``live → ended``: no more issues."""
    return _change(db, campaign, user, "campaign_end", ("live",),
                   lambda s: CampaignState(**(asdict(s) | {"state": "ended"})))


def take_live(db: ServingDB, campaign: Campaign, roles: Roles, maker: str | None = None
              ) -> list[tuple[str, str]]:
    """Submit (by ``maker``), approve what is needed (each by the first holder of the role
    who is not ``maker``) and launch (by ``maker``) ``campaign``, through the same state
    machine and audit log as the commands; nothing when it is already live with this
    definition. ``maker`` defaults to the first activity approver. Returns the steps as
    (action, user); raises :class:`~kequn.errors.ValidationError` when ``roles`` has
    nobody to approve."""
    state = read_state(db, campaign.name)
    if state.state == "live" and not changed_since_approval(state, campaign):
        return []
    makers = roles.who("activity_approvers")
    maker = maker or (makers[0] if makers else None)
    if maker is None:
        raise _refuse(f"nobody may approve campaign '{campaign.name}'",
                      hint=f"activity_approvers in {roles.path}")
    steps: list[tuple[str, str]] = []
    if state.state in ("draft", "pending_approval", "approved", "live") and (
            state.state == "draft" or changed_since_approval(state, campaign)):
        state = submit(db, campaign, maker)
        steps.append(("submit", maker))
    for what in needed(campaign):
        if state.state != "pending_approval" or getattr(state, f"{what}_approved_by"):
            continue
        checker = next((u for u in roles.who(APPROVALS[what]) if u != state.submitted_by),
                       None)
        if checker is None:
            raise _refuse(f"nobody but the submitter may approve campaign "
                          f"'{campaign.name}''s {what}", hint=f"{APPROVALS[what]} in {roles.path}")
        state = approve(db, campaign, checker, what, roles)
        steps.append((f"approve {what}", checker))
    state = launch(db, campaign, maker)
    steps.append(("launch", maker))
    return steps
