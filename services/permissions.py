"""Who may change what. Pure decisions on an Actor and a study; raise Forbidden.

This is the one home of "is sponsor staff" (the visibility rule asks `is_sponsor_staff`
too), of who may change a channel's digest, and of which entries wait for an approver
(`needs_approval`) and who may decide them (`require_approver`, `require_second_approver`),
of which KPIs a reporter's organisation reports (`reportable_kinds`), and of who keeps the
KPI catalogue and a study's KPI targets.
"""

from __future__ import annotations

from crobot.services.actor import Actor
from crobot.services.errors import Forbidden, NotRegistered, msg
from crobot.storage.models import AudienceKind, ChannelLink, KpiKind, OrgKind, Person, Role, Study

_SPONSOR_ROLES = (Role.SPONSOR_APPROVER, Role.SPONSOR_MEMBER, Role.SPONSOR_LEAD, Role.ADMIN)


def not_registered(team_id: str, user_id: str) -> NotRegistered:
    """How to get access, with the ids a crobot admin needs to copy."""
    return NotRegistered(
        msg(
            "crobot does not know you (user `{}`, workspace `{}`): "
            "ask a crobot admin to register you.",
            user_id,
            team_id,
        ),
        msg(
            "The admin runs `crobot person add {} --team {} --name NAME --org ORG --role ROLE`.",
            user_id,
            team_id,
        ),
    )


def require_known(actor: Actor) -> None:
    """Someone crobot does not know gets the how-to-get-access answer and nothing else:
    no study codes, no items, not even whether an id exists."""
    if not (actor.trusted or actor.person is not None):
        raise not_registered(actor.team_id, actor.user_id)


def is_sponsor_staff(person: Person | None, study: Study) -> bool:
    """A registered member of the study's sponsor organisation with a sponsor role."""
    return (
        person is not None
        and person.org_id == study.sponsor_org_id
        and (person.role in _SPONSOR_ROLES)
    )


def is_sponsor(actor: Actor, study: Study) -> bool:
    """Acts with the sponsor's authority: sponsor staff, or a trusted operator (CLI)."""
    return actor.trusted or is_sponsor_staff(actor.person, study)


def is_vendor(actor: Actor, vendor_ids: set[int]) -> bool:
    p = actor.person
    return p is not None and p.org_id in vendor_ids


def is_approver(actor: Actor, study: Study) -> bool:
    p = actor.person
    return (
        p is not None
        and p.org_id == study.sponsor_org_id
        and p.role in (Role.SPONSOR_APPROVER, Role.ADMIN)
    )


def require_member(actor: Actor, study: Study, vendor_ids: set[int]) -> None:
    """Sponsor staff or a vendor of this study; everyone else is read-only."""
    require_known(actor)
    if actor.trusted:
        return
    if not (is_sponsor(actor, study) or is_vendor(actor, vendor_ids)):
        raise Forbidden(
            msg("You are not on study {}, so you cannot change it.", study.code), field="study"
        )


def require_org_write(actor: Actor, study: Study, vendor_ids: set[int], org_id: int | None) -> None:
    """Vendors may only write rows of their own organisation; the sponsor may write any."""
    require_member(actor, study, vendor_ids)
    if is_sponsor(actor, study):
        return
    if org_id != actor.org_id:
        raise Forbidden(
            "Vendors can only report and change their own organisation's items.",
            "Leave out `org:` to use your own organisation.",
            field="org",
        )


def require_approver(actor: Actor, study: Study) -> None:
    if not is_approver(actor, study):
        raise Forbidden(msg("Only approvers for {} can decide.", study.code))


def needs_approval(actor: Actor, study: Study, org_id: int | None) -> bool:
    """Whether a KPI value or a milestone completion `actor` enters for `org_id` waits for
    an approver.

    Only a sponsor approver's own entries for the sponsor (`org_id` the sponsor's, or
    None: a study-level milestone) are approved at once, and not even those when the study
    requires four eyes. Anything entered on a vendor's behalf, or by anyone else — sponsor
    members, vendors, the CLI operator — waits: the sponsor accepts every value it relies
    on, and no one replaces a vendor's approved value unseen.
    """
    if study.four_eyes:
        return True
    sponsors_own = org_id is None or org_id == study.sponsor_org_id
    return not (sponsors_own and is_approver(actor, study))


def require_second_approver(actor: Actor, study: Study, requested_by: str) -> None:
    """Under four eyes, the submitter of a pending request cannot decide it."""
    if study.four_eyes and requested_by == actor.label:
        raise Forbidden(
            msg(
                "{} requires four eyes: you submitted this, so a second approver must decide.",
                study.code,
            )
        )


def require_schedule_rights(actor: Actor, link: ChannelLink, vendor_ids: set[int]) -> None:
    """The sponsor's staff may change any channel's digest; a vendor team only its own
    vendor channel's, and only while it is a vendor on the study."""
    if is_sponsor(actor, link.study):
        return
    if (
        link.audience == AudienceKind.VENDOR
        and actor.org_id is not None
        and actor.org_id == link.audience_org_id
        and actor.org_id in vendor_ids
    ):
        return
    raise Forbidden(
        "Only the sponsor's staff (or this vendor channel's own team) can change its digest."
    )


def require_limit_setter(actor: Actor, study: Study) -> None:
    """Quality tolerance limits are the sponsor's pre-specified ranges (ICH E6(R3)): only
    its approvers (or the trusted operator, the CLI) set or withdraw them."""
    require_known(actor)
    if not (actor.trusted or is_approver(actor, study)):
        raise Forbidden(
            msg("Only sponsor approvers for {} can set quality tolerance limits.", study.code)
        )


def require_breach_closer(actor: Actor, study: Study) -> None:
    """Closing a QTL breach is a sponsor approver's decision (a person: never the CLI)."""
    require_known(actor)
    if not is_approver(actor, study):
        raise Forbidden(msg("Only sponsor approvers for {} can close a QTL breach.", study.code))


_VENDOR_KINDS = {OrgKind.CRO: KpiKind.CRO, OrgKind.CMO: KpiKind.CMO, OrgKind.LAB: KpiKind.LAB}


def reportable_kinds(actor: Actor) -> frozenset[KpiKind] | None:
    """The kinds of KPI `actor` may report: None for every kind (the sponsor's people and
    the operator); a vendor's person, those of its organisation's kind and `any` (a vendor
    of kind `other` only `any`). `sponsor` KPIs rate a vendor: never a vendor's to report."""
    if actor.trusted:
        return None
    person = actor.person
    if person is None:
        return frozenset()
    if person.org.kind == OrgKind.SPONSOR:
        return None
    own = _VENDOR_KINDS.get(person.org.kind)
    return frozenset({KpiKind.ANY} | ({own} if own else set()))


def may_report(actor: Actor, study: Study, kind: KpiKind) -> bool:
    """Whether `actor` may report a KPI of this kind on this study: the sponsor any KPI,
    for any organisation; a vendor the kinds `reportable_kinds` gives it."""
    if is_sponsor(actor, study):
        return True
    kinds = reportable_kinds(actor)
    return kinds is None or kind in kinds


def require_catalogue_editor(actor: Actor) -> None:
    """The KPI catalogue is the sponsor's, kept by the crobot operator on the server
    (`crobot kpi define | update | retire`): no Slack user changes it, a vendor least of
    all, since every study's views and the vendors' scorecards read it."""
    if not actor.trusted:
        raise Forbidden(
            "KPI definitions are kept by the sponsor's crobot operator, not from Slack.",
            "Ask them to run `crobot kpi define KEY …` (or `update` / `retire`) on the server.",
        )


def require_target_setter(actor: Actor, study: Study) -> None:
    """A study's KPI targets are the sponsor's expectations of its vendors: only its
    approvers (or the operator, the CLI) set or clear them."""
    require_known(actor)
    if not (actor.trusted or is_approver(actor, study)):
        raise Forbidden(msg("Only sponsor approvers for {} can set KPI targets.", study.code))
