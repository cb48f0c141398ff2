"""The forecast in words: one source for `crobot forecast`, `/cro forecast` and digests.

Plain text with values marked (`Msg`): Slack renderers escape the values through the
Block Kit builder, the CLI prints them as they are.
"""

from __future__ import annotations

from datetime import date

from crobot.services.enrolment import StudyForecast
from crobot.services.errors import Msg, msg
from crobot.services.recruitment import MIN_SITES, MIN_WEEKS, MilestoneOutlook

BEYOND = "beyond the horizon"
INTERVAL = (
    "P10–P90: in 8 of 10 simulated futures, consistent with the data so far, the target is "
    "reached between these dates (P50: as likely before as after)."
)


def day(d: date | None) -> str:
    return d.isoformat() if d else BEYOND


def headline(sf: StudyForecast) -> Msg:
    """`ONC-301: 120/300 enrolled · P50 2027-09-14 (P10 … – P90 …)`."""
    f = sf.forecast
    return msg(
        "{}: {}/{} enrolled · P50 {} (P10 {} – P90 {})",
        sf.study,
        f.enrolled,
        f.target,
        day(f.p50),
        day(f.p10),
        day(f.p90),
    )


def model_line(sf: StudyForecast) -> Msg:
    f = sf.forecast
    rate = f"{f.fit.mean_rate:.2f} patients per site per month"
    sites = f"{f.active_sites} active site(s), {f.planned_sites} planned"
    return msg(f"Model: {{}} · {rate} · {sites} · as of {f.as_of.isoformat()}", f.model)


def fallback_line(sf: StudyForecast) -> Msg | None:
    """The fallback, said plainly whenever it is used."""
    f = sf.forecast
    if not f.is_fallback:
        return None
    return msg(
        "FALLBACK: one pooled Poisson rate for every site, because {}. Site-to-site "
        f"differences are not modelled until there are {MIN_SITES} active sites and "
        f"{MIN_WEEKS} weeks of data; the interval is the pooled rate's.",
        f.fit.reason,
    )


def milestone_line(m: MilestoneOutlook) -> Msg:
    if m.extra_sites_needed is None:
        extra = "no number of new sites makes P50 meet it"
    elif m.extra_sites_needed == 0:
        extra = "P50 meets it with the current sites"
    else:
        extra = f"{m.extra_sites_needed} more site(s) activated now would make P50 meet it"
    return msg(
        f"#{m.id} {{}} (planned {m.planned.isoformat()}): {m.p_on_time:.0%} on time · {extra}",
        m.name,
    )


def notes(sf: StudyForecast) -> list[str]:
    out = []
    if sf.pending_reports:
        out.append(f"{sf.pending_reports} enrolment report(s) awaiting approval are not counted.")
    if not sf.whole_study:
        out.append("Computed from the sites you can see, not the whole study.")
    return out
