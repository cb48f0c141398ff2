"""The Poisson–gamma recruitment model against cases with known answers."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from crobot.services.recruitment import (
    DAYS_PER_MONTH,
    MODEL_PG,
    MODEL_POOLED,
    MilestoneTarget,
    Site,
    fit,
    fit_gamma,
    forecast,
    linear_forecast,
)

AS_OF = date(2026, 11, 27)


def _ago(months: float) -> date:
    return AS_OF - timedelta(days=round(months * DAYS_PER_MONTH))


def _simulated_sites(alpha: float, beta: float, n: int, months: float, seed: int) -> list[Site]:
    rng = np.random.default_rng(seed)
    rates = rng.gamma(alpha, 1 / beta, size=n)
    counts = rng.poisson(rates * months)
    return [Site(f"S{i}", int(k), activated=_ago(months)) for i, k in enumerate(counts)]


def test_a_single_site_falls_back_to_its_own_poisson_rate_and_says_so() -> None:
    site = Site("S1", 30, activated=_ago(10))
    g = fit([site], AS_OF)
    assert g.model == MODEL_POOLED and "1 active site" in g.reason
    assert g.mean_rate == pytest.approx(3.05, rel=0.01)  # (30 + ½) / 10 months
    f = forecast([site], target=60, as_of=AS_OF)
    assert f.is_fallback and f.enrolled == 30
    # 30 more at ~3 a month: about ten months, with an interval around it.
    assert f.p10 and f.p50 and f.p90
    months = (f.p50 - AS_OF).days / DAYS_PER_MONTH
    assert 8.5 < months < 11.5
    assert f.p10 < f.p50 < f.p90


def test_many_sites_recover_known_alpha_and_beta() -> None:
    sites = _simulated_sites(alpha=2.0, beta=4.0, n=400, months=12, seed=7)
    g = fit(sites, AS_OF)
    assert g.model == MODEL_PG
    assert g.alpha == pytest.approx(2.0, rel=0.3)
    assert g.beta == pytest.approx(4.0, rel=0.3)
    assert g.mean_rate == pytest.approx(0.5, rel=0.1)


def test_identical_sites_do_not_send_the_fit_to_infinity() -> None:
    counts, months = [6] * 10, [6.0] * 10
    alpha, beta = fit_gamma(counts, months)
    assert np.isfinite(alpha) and np.isfinite(beta)
    assert alpha / beta == pytest.approx(1.0, rel=0.05)


def test_too_little_data_is_a_labelled_fallback_never_a_silent_one() -> None:
    young = _simulated_sites(2.0, 4.0, n=20, months=1.0, seed=1)  # four weeks of data
    g = fit(young, AS_OF)
    assert g.model == MODEL_POOLED and "week(s) of data" in g.reason
    assert forecast(young, target=200, as_of=AS_OF).is_fallback


def test_planned_sites_count_from_their_planned_activation() -> None:
    sites = _simulated_sites(2.0, 4.0, n=20, months=6, seed=3)
    later = [Site(f"P{i}", planned=AS_OF + timedelta(days=60)) for i in range(20)]
    alone = forecast(sites, target=200, as_of=AS_OF)
    helped = forecast(sites + later, target=200, as_of=AS_OF)
    assert helped.p50 and alone.p50 and helped.p50 < alone.p50
    assert helped.planned_sites == 20 and helped.active_sites == 20


def test_the_interval_covers_the_truth_about_as_often_as_it_says() -> None:
    """P10–P90 should hold the real date in about 80% of studies run from the model."""
    inside, runs = 0, 60
    for seed in range(runs):
        rng = np.random.default_rng(1000 + seed)
        n, months, target = 40, 6.0, 400
        rates = rng.gamma(2.0, 1 / 4.0, size=n)
        so_far = rng.poisson(rates * months)
        sites = [Site(f"S{i}", int(k), activated=_ago(months)) for i, k in enumerate(so_far)]
        remaining = target - int(so_far.sum())
        truth_months = rng.gamma(remaining, 1.0) / rates.sum()  # exact for constant rates
        truth = AS_OF + timedelta(days=truth_months * DAYS_PER_MONTH)
        f = forecast(sites, target=target, as_of=AS_OF, sims=2000, seed=seed)
        assert f.p10 and f.p90
        inside += f.p10 <= truth <= f.p90
    assert 0.65 <= inside / runs <= 0.95


def test_milestones_get_a_probability_and_the_sites_that_would_rescue_them() -> None:
    sites = _simulated_sites(2.0, 4.0, n=20, months=6, seed=5)  # ~10 patients a month
    enrolled = sum(s.enrolled for s in sites)
    easy = MilestoneTarget(1, "50% enrolment", enrolled + 10, AS_OF + timedelta(days=180))
    hard = MilestoneTarget(2, "LPI", enrolled + 200, AS_OF + timedelta(days=180))
    done = MilestoneTarget(3, "FPI", 1, AS_OF + timedelta(days=10))
    f = forecast(sites, target=enrolled + 200, as_of=AS_OF, milestones=[easy, hard, done])
    by_id = {m.id: m for m in f.milestones}
    assert by_id[1].p_on_time > 0.95 and by_id[1].extra_sites_needed == 0
    assert by_id[2].p_on_time < 0.05
    extra = by_id[2].extra_sites_needed
    assert extra is not None and extra > 0
    # Activating that many sites now does make the median meet the date; one fewer does not.
    new = [Site(f"N{i}", 0, activated=AS_OF) for i in range(extra)]
    # Sites activated today carry no data, so they get the fitted prior, as in the model.
    again = forecast(sites + new, target=enrolled + 200, as_of=AS_OF, milestones=[hard])
    assert again.milestones[0].p_on_time >= 0.4
    assert by_id[3].p_on_time == 1.0


def test_a_reached_target_is_today_and_bad_targets_are_refused() -> None:
    sites = [Site("S1", 50, activated=_ago(3))]
    f = forecast(sites, target=40, as_of=AS_OF)
    assert f.p10 == f.p50 == f.p90 == AS_OF
    with pytest.raises(ValueError):
        forecast(sites, target=0, as_of=AS_OF)


def test_the_linear_baseline() -> None:
    assert linear_forecast(50, 5.0, 100, AS_OF) == AS_OF + timedelta(days=153)
    assert linear_forecast(0, 5.0, 100, AS_OF) is None
    assert linear_forecast(100, 5.0, 100, AS_OF) == AS_OF
