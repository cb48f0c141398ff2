"""Who may change what. Pure decisions on an Actor and a study; raise Forbidden."""

from __future__ import annotations

from crobot.services.actor import Actor
from crobot.services.errors import Forbidden
from crobot.storage.models import Role, Study

_SPONSOR_ROLES = (Role.SPONSOR_APPROVER, Role.SPONSOR_MEMBER, Role.ADMIN)
_UNKNOWN_HINT = "Ask a crobot admin to add you (`crobot person add`)."


def is_sponsor(actor: Actor, study: Study) -> bool:
    if actor.trusted:
        return True
    p = actor.person
    return p is not None and p.org_id == study.sponsor_org_id and p.role in _SPONSOR_ROLES


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
    if actor.trusted:
        return
    if actor.person is None:
        raise Forbidden("You are not registered with crobot, so you can only read.", _UNKNOWN_HINT)
    if not (is_sponsor(actor, study) or is_vendor(actor, vendor_ids)):
        raise Forbidden(f"You are not on study {study.code}, so you cannot change it.")


def require_org_write(actor: Actor, study: Study, vendor_ids: set[int], org_id: int | None) -> None:
    """Vendors may only write rows of their own organisation; the sponsor may write any."""
    require_member(actor, study, vendor_ids)
    if is_sponsor(actor, study):
        return
    if org_id != actor.org_id:
        raise Forbidden(
            "Vendors can only report and change their own organisation's items.",
            "Leave out `org:` to use your own organisation.",
        )


def require_approver(actor: Actor, study: Study) -> None:
    if not is_approver(actor, study):
        raise Forbidden(f"Only approvers for {study.code} can decide.")
