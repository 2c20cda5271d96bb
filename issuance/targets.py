"""Campaigns against the segment definitions: the target must exist, be synced, and be
shared with the campaign's owner (DESIGN §5: ``shared_with`` lists the teams allowed to
target a segment)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from issuance.campaign import Campaign
from kequn.errors import KequnError, ValidationError, did_you_mean


def check_targets(campaigns: Mapping[str, Campaign], segments_dir: Path) -> list[KequnError]:
    """Every problem with the campaigns' target segments, located at ``target_segment``.

    Problems: an unknown segment (with a "did you mean"), a segment that is not synced
    (it never reaches ``coupon_eligibility``), and an owner neither owning the segment
    nor listed in its ``shared_with``. Empty when all is well.
    """
    from segments.load import load_segments

    project = load_segments(segments_dir)
    errors: list[KequnError] = []
    for campaign in campaigns.values():
        where = campaign.location("target_segment")
        segment = project.segments.get(campaign.target_segment)
        if segment is None:
            errors.append(ValidationError(
                f"campaign '{campaign.name}' targets unknown segment "
                f"'{campaign.target_segment}'", where,
                hint=did_you_mean(campaign.target_segment, project.segments)))
            continue
        if segment.sync is None:
            errors.append(ValidationError(
                f"segment '{segment.name}' is not synced, so no customer is ever eligible "
                f"for campaign '{campaign.name}'", where,
                hint=f"add 'sync on' to the SEGMENT header in {segment.path}"))
        allowed = {segment.owner, *segment.shared_with}
        if campaign.owner and campaign.owner not in allowed:
            errors.append(ValidationError(
                f"segment '{segment.name}' is not shared with {campaign.owner} "
                f"(owner {segment.owner}; shared with "
                f"{', '.join(segment.shared_with) or 'nobody'})", campaign.location("owner"),
                hint=f"kequn segments share {segment.name} {campaign.owner}"))
    return errors
