"""`ticket-classifier monitor`: does the routing guarantee still hold on live tickets?

The guarantee (ticket_router/certification.py) holds for tickets like the calibration tickets it was certified on.
New products, new queues or a reorganisation break that silently. The monitor compares a file of live tickets with
the calibration profile stored in the export (`routing_profile`): share auto-routed, score histogram, predicted-label
mix and, where the file carries the label a person finally assigned, the promise itself: misrouting among auto-routed
tickets, overall and per queue, with one-sided 95% Clopper-Pearson bounds (rows without a final label are skipped and
counted). Each check flags only what is beyond sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import beta, chisquare

from ticket_data.preprocessing import clean_label


def one_sided_bounds(errors: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """(lower, upper) one-sided Clopper-Pearson bounds at ``confidence``: the rate is >= lower with that confidence,
    and <= upper with that confidence (0 and 1 when there are no trials)."""
    if trials == 0:
        return 0.0, 1.0
    tail = 1 - confidence
    low = 0.0 if errors == 0 else float(beta.ppf(tail, errors, trials - errors + 1))
    high = 1.0 if errors == trials else float(beta.ppf(1 - tail, errors + 1, trials - errors))
    return low, high


def promise_check(wrong: np.ndarray, routed: np.ndarray, predicted: np.ndarray, guarantee: dict,
                  label_names: list[str], confidence: float = 0.95) -> dict:
    """Realised misrouting among auto-routed tickets, checked family by family as it was certified
    (ticket_router/certification.py): the queues without a target of their own pooled against ``max_misrouting``,
    each queue with its own target alone. A family is ``broken`` when its whole one-sided interval [lower, 1] lies
    above its target; the families share 1 - ``confidence`` (Bonferroni), so a kept promise raises a false alarm at
    most that often. Every queue's own rate is reported too, for information (a queue of the pooled family may run
    above the target while the family keeps it)."""
    own = guarantee.get("queue_max_misrouting") or {}
    target = guarantee["max_misrouting"]
    own_ids = {label_names.index(name) for name in own if name in label_names}
    pooled = routed & ~np.isin(predicted, list(own_ids))
    families = ([("default", pooled, target)] if pooled.any() else []) + [
        (label_names[i], routed & (predicted == i), own[label_names[i]]) for i in sorted(own_ids)
        if (routed & (predicted == i)).any()]
    level = 1 - (1 - confidence) / max(len(families), 1)

    def check(mask, goal, at):
        n, k = int(mask.sum()), int((wrong & mask).sum())
        low, high = one_sided_bounds(k, n, at)
        return {"auto_routed": n, "misrouted": k, "rate": k / n if n else 0.0, "lower_95": low, "upper_95": high,
                "target": goal, "broken": bool(n > 0 and low > goal)}

    result = {"overall": check(routed, max([target, *own.values()]), confidence),
              "families": {name: check(mask, goal, level) for name, mask, goal in families},
              "confidence_per_family": level}
    result["overall"]["broken"] = any(family["broken"] for family in result["families"].values())
    result["queues"] = {name: {**check(routed & (predicted == i), own.get(name, target), confidence), "broken": None}
                        for i, name in enumerate(label_names) if (routed & (predicted == i)).any()}
    return result


def broken_families(check: dict, routed: str = "auto-routed") -> list[str]:
    """An alert for each family of `promise_check` whose promise is shown broken."""
    alerts = []
    for name, family in check["families"].items():
        if family["broken"]:
            what = f"{routed} tickets" if name == "default" else f"tickets {routed} to {name}"
            alerts.append(f"{family['misrouted']}/{family['auto_routed']} {what} misrouted ({family['rate']:.1%}; "
                          f"one-sided {check['confidence_per_family']:.1%}: >= {family['lower_95']:.1%}): above the "
                          f"promised {family['target']:.1%} beyond noise")
    return alerts


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a proportion (0, 1 when there are no trials)."""
    if trials == 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - tail, successes + 1, trials - successes))
    return low, high


@dataclass
class MonitorThresholds:
    coverage_tolerance: float = 0.10  # auto-routed share may move this much (absolute) from calibration's
    mix_tolerance: float = 0.15  # total-variation distance of the predicted-label mix from calibration's
    significance: float = 0.01  # chi-square test of the label mix: drift only beyond noise

    def __post_init__(self):
        for name in ("coverage_tolerance", "mix_tolerance", "significance"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value}")


def compare_to_profile(predicted: np.ndarray, scores: np.ndarray, routed: np.ndarray, profile: dict,
                       guarantee: dict, label_names: list[str], true_labels: list[str] | None = None,
                       thresholds: MonitorThresholds | None = None) -> dict:
    """The monitor's checks on live tickets (model outputs from `RoutingRule.decide`), against the calibration
    profile; ``true_labels`` are the labels people finally assigned (any string: a queue the model does not know
    counts as misrouted when auto-routed)."""
    thresholds = thresholds or MonitorThresholds()
    predicted, scores, routed = np.asarray(predicted), np.asarray(scores), np.asarray(routed, dtype=bool)
    n = len(predicted)
    if n == 0:
        raise ValueError("no tickets with text to monitor")
    report: dict = {"tickets": n, "calibration_tickets": profile["tickets"], "alerts": []}

    # Share auto-routed: drift when the whole 95% interval lies outside calibration's share +- the tolerance.
    auto = int(routed.sum())
    low, high = clopper_pearson(auto, n)
    expected = profile["coverage"]
    drift = high < expected - thresholds.coverage_tolerance or low > expected + thresholds.coverage_tolerance
    report["coverage"] = {"live": auto / n, "interval": [low, high], "calibration": expected,
                          "tolerance": thresholds.coverage_tolerance, "drift": bool(drift)}
    if drift:
        report["alerts"].append(f"auto-routed share {auto / n:.1%} [{low:.1%}, {high:.1%}] is outside calibration's "
                                f"{expected:.1%} +- {thresholds.coverage_tolerance:.0%}")

    # Score histogram (for the plot) and the predicted-label mix.
    bins = len(profile["score_histogram"])
    live_histogram = np.histogram(scores, bins=bins, range=(0.0, 1.0))[0]
    report["score_histogram"] = {"live": live_histogram.tolist(), "calibration": profile["score_histogram"]}
    live_mix = np.bincount(predicted, minlength=len(label_names)) / n
    reference_mix = np.array([profile["predicted_mix"].get(name, 0.0) for name in label_names])
    distance = 0.5 * float(np.abs(live_mix - reference_mix).sum())
    # Validation shares of 0 would make any live ticket infinitely surprising: smooth by half a ticket.
    smoothed = (reference_mix * profile["tickets"] + 0.5) / (profile["tickets"] + 0.5 * len(label_names))
    p_value = float(chisquare(live_mix * n, smoothed * n).pvalue)
    mix_drift = distance > thresholds.mix_tolerance and p_value < thresholds.significance
    report["label_mix"] = {"live": dict(zip(label_names, live_mix.tolist())),
                           "calibration": dict(zip(label_names, reference_mix.tolist())),
                           "total_variation": distance, "chi_square_p": p_value,
                           "tolerance": thresholds.mix_tolerance, "drift": bool(mix_drift)}
    if mix_drift:
        moved = sorted(zip(label_names, live_mix - reference_mix), key=lambda kv: -abs(kv[1]))[:3]
        report["alerts"].append(
            f"predicted-label mix moved by {distance:.2f} (total variation; chi-square p {p_value:.1e}): "
            + ", ".join(f"{name} {delta:+.1%}" for name, delta in moved))

    # The promise itself, where people's final labels are known: misrouting among auto-routed tickets.
    if true_labels is not None:
        true_labels = np.array([clean_label(None if pd.isna(label) else label) for label in true_labels], dtype=object)
        given = true_labels != ""
        known = set(label_names)
        wrong = np.array([label_names[p] != t for p, t in zip(predicted, true_labels)], dtype=bool)
        check = promise_check(wrong[given], routed[given], predicted[given], guarantee, label_names)
        overall = check["overall"]
        report["misrouting"] = {**overall, "interval": [overall["lower_95"], overall["upper_95"]],
                                "delta": guarantee["delta"], "labelled": int(given.sum()),
                                "skipped_without_label": int((~given).sum()), "families": check["families"],
                                "confidence_per_family": check["confidence_per_family"], "queues": check["queues"]}
        new = sorted(set(true_labels[given]) - known)
        report["new_queues"] = {label: {"tickets": int((true_labels == label).sum()),
                                        "auto_routed": int(((true_labels == label) & routed).sum())} for label in new}
        report["alerts"] += broken_families(check)
        if new:
            report["alerts"].append(
                "queue(s) the model does not know: " + ", ".join(
                    f"{label} ({v['tickets']} tickets, {v['auto_routed']} auto-routed)"
                    for label, v in report["new_queues"].items()) + "; retrain with them")
    report["ok"] = not report["alerts"]
    return report


def summarize(report: dict) -> str:
    coverage = report["coverage"]
    lines = [
        f"{report['tickets']} live tickets against the {report['calibration_tickets']} tickets the rule was certified on",
        f"auto-routed: {coverage['live']:.1%} [{coverage['interval'][0]:.1%}, {coverage['interval'][1]:.1%}] "
        f"(calibration {coverage['calibration']:.1%}, tolerance +-{coverage['tolerance']:.0%})",
        f"predicted-label mix: total variation {report['label_mix']['total_variation']:.3f} from calibration "
        f"(chi-square p {report['label_mix']['chi_square_p']:.2g})",
    ]
    if "misrouting" in report:
        m = report["misrouting"]
        lines.append(f"misrouted among auto-routed: {m['misrouted']}/{m['auto_routed']} = {m['rate']:.2%} "
                     f"(one-sided 95%: {m['lower_95']:.2%} to {m['upper_95']:.2%}; promise: <= {m['target']:.0%}); "
                     f"{m['labelled']} tickets with a final label, {m['skipped_without_label']} without (skipped)")
        for name, family in m["families"].items():
            lines.append(f"  {'queues without a target of their own' if name == 'default' else name}: "
                         f"{family['misrouted']}/{family['auto_routed']} = {family['rate']:.2%} (one-sided "
                         f"{m['confidence_per_family']:.1%}: >= {family['lower_95']:.2%}; promise <= {family['target']:.1%})"
                         + (" BROKEN" if family["broken"] else ""))
        lines.append("  by predicted queue (information): " + ", ".join(
            f"{name} {queue['misrouted']}/{queue['auto_routed']}" for name, queue in m["queues"].items()))
    lines += [f"ALERT: {alert}" for alert in report["alerts"]] or ["no drift beyond noise: the guarantee's premises hold"]
    return "\n".join(lines)


def plot_monitor(report: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if "misrouting" in report else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    histogram = report["score_histogram"]
    edges = np.linspace(0, 1, len(histogram["live"]) + 1)
    for name, counts, color in (("calibration", histogram["calibration"], "tab:gray"), ("live", histogram["live"], "tab:blue")):
        counts = np.asarray(counts, dtype=float)
        axes[0].stairs(counts / max(counts.sum(), 1), edges, label=name, color=color)
    axes[0].set_xlabel("routing score")
    axes[0].set_ylabel("share of tickets")
    axes[0].set_title(f"auto-routed: live {report['coverage']['live']:.0%}, calibration {report['coverage']['calibration']:.0%}")
    axes[0].legend()
    mix = report["label_mix"]
    names = list(mix["live"])
    x = np.arange(len(names))
    axes[1].bar(x - 0.2, [mix["calibration"][n] for n in names], 0.4, label="calibration", color="tab:gray")
    axes[1].bar(x + 0.2, [mix["live"][n] for n in names], 0.4, label="live", color="tab:blue")
    axes[1].set_xticks(x, names, rotation=45, ha="right", fontsize=7)
    axes[1].set_title(f"predicted labels (TV {mix['total_variation']:.2f})")
    axes[1].legend()
    if panels == 3:
        m = report["misrouting"]
        axes[2].errorbar([0], [m["rate"]], yerr=[[m["rate"] - m["interval"][0]], [m["interval"][1] - m["rate"]]],
                         fmt="o", color="tab:red" if m["broken"] else "tab:blue", capsize=6)
        axes[2].axhline(m["target"], color="tab:red", linestyle="--", label=f"promise {m['target']:.0%}")
        axes[2].set_xticks([])
        axes[2].set_ylim(0, max(m["interval"][1], m["target"]) * 1.3 + 1e-3)
        axes[2].set_title("misrouted among auto-routed (one-sided 95% bounds)")
        axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
