"""How honest is the enrolment forecast? Simulated studies with known answers.

    python -m benchmarks.forecast_accuracy [--studies 200] [--sims 2000] [--seed 1]

Each study draws its truth from the Poisson–gamma model itself: 20–200 sites whose rates
come from Gamma(α, β) with α in 1–4 and a mean of 0.3–1.5 patients per site per month,
activated over the first 2–8 months (staggered), and a target of 4–12 patients per site.
The whole recruitment is simulated patient by patient; at the day 30–50% of the target is
reached, `services.recruitment.forecast` sees only what a sponsor would (each site's
activation date and count so far) and predicts the date the target is reached. Reported:

- coverage: how often the true date falls inside P10–P90 (an 80% interval: goal 75–85%);
- the median absolute error of P50, in days, and the same for the linear baseline (the
  average pace so far, continued), which has no interval at all;
- how often the labelled fallback (pooled Poisson) was used;
- the fit-and-forecast time for a 200-site study (goal < 1 s).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from benchmarks.common import machine_line
from crobot.services.recruitment import DAYS_PER_MONTH, Site, forecast, linear_forecast

START = date(2025, 1, 6)


@dataclass
class Trial:
    covered: bool
    error_days: float
    linear_error_days: float | None
    fallback: bool
    sites: int
    seconds: float


def _trial(rng: np.random.Generator, sims: int, seed: int) -> Trial:
    n = int(rng.integers(20, 201))
    alpha = float(rng.uniform(1, 4))
    mean = float(rng.uniform(0.3, 1.5))
    rates = rng.gamma(alpha, mean / alpha, size=n)  # Gamma(α, β = α / mean)
    starts = rng.uniform(0, rng.uniform(2, 8), size=n)  # months after START
    target = int(n * rng.uniform(4, 12))
    # Every site's arrival times (months after START), far enough to reach the target.
    horizon = float(starts.max()) + 5 * target / float(rates.sum())
    per_site = [
        s + np.cumsum(rng.exponential(1 / r, size=int(r * (horizon - s) * 2) + 20))
        for s, r in zip(starts, rates, strict=True)
    ]
    merged = np.sort(np.concatenate(per_site))
    truth = START + timedelta(days=float(merged[target - 1]) * DAYS_PER_MONTH)
    cut = int(target * rng.uniform(0.3, 0.5))
    as_of = START + timedelta(days=int(float(merged[cut - 1]) * DAYS_PER_MONTH) + 1)
    as_of_month = (as_of - START).days / DAYS_PER_MONTH  # whole days, as the record keeps
    sites = []
    for i, (s, times) in enumerate(zip(starts, per_site, strict=True)):
        activated = START + timedelta(days=int(s * DAYS_PER_MONTH))
        if activated > as_of:
            sites.append(Site(f"S{i}", 0, planned=activated))
        else:
            sites.append(Site(f"S{i}", int(np.sum(times <= as_of_month)), activated=activated))
    enrolled = sum(site.enrolled for site in sites)
    began = time.perf_counter()
    f = forecast(sites, target=target, as_of=as_of, sims=sims, seed=seed)
    seconds = time.perf_counter() - began
    assert f.p10 and f.p50 and f.p90
    linear = linear_forecast(enrolled, as_of_month - float(starts.min()), target, as_of)
    return Trial(
        covered=f.p10 <= truth <= f.p90,
        error_days=abs((f.p50 - truth).days),
        linear_error_days=abs((linear - truth).days) if linear else None,
        fallback=f.is_fallback,
        sites=n,
        seconds=seconds,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--sims", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    trials = [_trial(rng, args.sims, i) for i in range(args.studies)]
    coverage = sum(t.covered for t in trials) / len(trials)
    linear = [t.linear_error_days for t in trials if t.linear_error_days is not None]
    big = [t.seconds for t in trials if t.sites >= 180]
    print(machine_line())
    print(
        f"studies: {len(trials)} (20–200 sites, staggered), simulations per forecast: {args.sims}"
    )
    print(f"P10–P90 coverage: {coverage:.0%} (goal 75–85%)")
    print(f"P50 median absolute error: {statistics.median(t.error_days for t in trials):.0f} days")
    print(f"linear baseline median absolute error: {statistics.median(linear):.0f} days")
    print(f"fallback used: {sum(t.fallback for t in trials)} of {len(trials)}")
    if big:
        print(f"forecast time, 180–200 sites: max {max(big):.2f} s (goal < 1 s)")


if __name__ == "__main__":
    main()
