"""The rule table of the gate without an MLflow server: hand-built results, predictions and policies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from model_lifecycle.core import rules, verdict
from model_lifecycle.core.evaluation import OVERALL, Predictions, SliceResult
from model_lifecycle.core.policy import Gate, Policy, parse
from model_lifecycle.errors import BadInput

NO_PRED = Predictions()
NO_Y = np.array([])


def policy(gates: str, task: str = "binary", statistics: str = "{mode: point}") -> Policy:
    """A policy from the YAML users write; ``gates`` is the indented list under ``gates:``."""
    return parse(f"version: 1\ntask: {task}\nholdout: {{path: h.csv, target: y}}\n"
                 f"statistics: {statistics}\ngates:\n{gates}", "test-policy.yml")


def results(metric: str, overall: float | None, n: int = 1000, **slices) -> dict[str, SliceResult]:
    """Overall plus slices given as ``key=(value, n)`` or ``key=(value, n, insufficient)``."""
    out = {OVERALL: SliceResult(OVERALL, n, False, {metric: {"value": overall}})}
    for key, spec in slices.items():
        value, size, insufficient = (*spec, False)[:3]
        out[key] = SliceResult(key, size, insufficient, {} if insufficient else {metric: {"value": value}})
    return out


def decide(pol: Policy, cand, base, y=NO_Y, cand_pred=NO_PRED, base_pred=None):
    return verdict.decide(pol, cand, base, y, cand_pred, base_pred)


# --- the table -------------------------------------------------------------------------------------


def test_every_rule_kind_is_a_gate_field_in_the_order_rows_come_out():
    assert list(rules.RULES) == ["floor", "improvement", "guardrail"]
    assert set(rules.RULES) <= set(Gate.model_fields)
    assert [rules.needs_baseline(fn) for fn in rules.RULES.values()] == [False, True, True]
    gate = policy("  - {metric: accuracy, guardrail: {max_drop: 0.1}, floor: 0.5}\n").gates[0]
    assert gate.rule_kinds() == ["floor", "guardrail"]


def test_a_gate_without_a_rule_is_rejected_naming_every_kind():
    with pytest.raises(BadInput) as info:
        policy("  - {metric: accuracy}\n")
    assert "a gate needs at least one of 'floor', 'improvement', 'guardrail'" in info.value.message


def test_rows_per_gate_come_floor_then_improvement_then_guardrail_whatever_the_yaml_order():
    pol = policy(
        "  - {metric: accuracy, guardrail: {max_drop: 0.1, slices: false}, improvement: {absolute: 0.01}, floor: 0.5}\n"
        "  - {metric: log_loss, floor: 0.9}\n"
    )
    rows = decide(pol, results("accuracy", 0.9), results("accuracy", 0.8))
    assert [(r["gate"], r["kind"]) for r in rows] == [(0, "floor"), (0, "improvement"), (0, "guardrail"), (1, "floor")]


# --- floors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric, floor, value, passed, rule", [
    pytest.param("accuracy", 0.8, 0.81, True, "≥ 0.8", id="higher-better-above"),
    pytest.param("accuracy", 0.8, 0.8, True, "≥ 0.8", id="higher-better-exactly-at-floor"),
    pytest.param("accuracy", 0.8, 0.79, False, "≥ 0.8", id="higher-better-below"),
    pytest.param("log_loss", 0.3, 0.29, True, "≤ 0.3", id="lower-better-below"),
    pytest.param("log_loss", 0.3, 0.3, True, "≤ 0.3", id="lower-better-exactly-at-floor"),
    pytest.param("log_loss", 0.3, 0.31, False, "≤ 0.3", id="lower-better-above"),
    pytest.param("roc_auc", 0.7, None, False, "≥ 0.7", id="undefined-metric-fails"),
])
def test_floor(metric, floor, value, passed, rule):
    pol = policy(f"  - {{metric: {metric}, floor: {floor}}}\n")
    for base in (None, results(metric, 0.1)):  # a floor never looks at the champion
        [row] = decide(pol, results(metric, value), base)
        assert row["kind"] == "floor" and row["slice"] == OVERALL and row["baseline"] is None and row["delta"] is None
        assert row["passed"] is passed and row["required"] == floor and row["rule"] == rule
        assert ("meets" if passed else "misses") in row["reason"] and "skipped" not in row
        assert row["reason"].endswith(f"({'higher' if metric != 'log_loss' else 'lower'} is better)")


# --- improvement -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric, setting, champion, candidate, required, passed", [
    pytest.param("accuracy", "absolute: 0.01", 0.80, 0.82, 0.01, True, id="absolute-above"),
    pytest.param("accuracy", "absolute: 0.01", 0.80, 0.81, 0.01, True, id="absolute-exactly-at-requirement"),
    pytest.param("accuracy", "absolute: 0.01", 0.80, 0.805, 0.01, False, id="absolute-below"),
    pytest.param("accuracy", "relative: 0.05", 0.80, 0.84, 0.04, True, id="relative-exactly-at-requirement"),
    pytest.param("accuracy", "relative: 0.05", 0.80, 0.83, 0.04, False, id="relative-below"),
    pytest.param("accuracy", "{absolute: 0.01, relative: 0.05}", 0.80, 0.83, 0.04, False, id="both-the-larger-counts"),
    pytest.param("log_loss", "relative: 0.1", 0.50, 0.45, 0.05, True, id="lower-better-exactly-at-requirement"),
    pytest.param("log_loss", "relative: 0.1", 0.50, 0.46, 0.05, False, id="lower-better-below"),
    pytest.param("log_loss", "absolute: 0.01", 0.50, 0.52, 0.01, False, id="lower-better-got-worse"),
    pytest.param("roc_auc", "absolute: 0.01", 0.80, None, 0.01, False, id="undefined-metric-fails"),
])
def test_improvement_point(metric, setting, champion, candidate, required, passed):
    setting = setting if setting.startswith("{") else f"{{{setting}}}"
    pol = policy(f"  - {{metric: {metric}, improvement: {setting}}}\n")
    [row] = decide(pol, results(metric, candidate), results(metric, champion))
    assert row["kind"] == "improvement" and row["baseline"] == champion
    assert row["required"] == pytest.approx(required) and row["passed"] is passed and row["interval"] is None
    if candidate is None:
        assert row["delta"] is None and "undefined" in row["reason"]
    else:
        assert row["delta"] == pytest.approx(candidate - champion)
        assert ("meets" if passed else "is below") in row["reason"]


def _accuracy_world(n: int, champion_right: int, candidate_right: int):
    """Binary labels where each model is right on a given number of rows (candidate's superset)."""
    y = np.tile([0, 1], n // 2)
    champ, cand = y.copy(), y.copy()
    champ[champion_right:] = 1 - champ[champion_right:]
    cand[candidate_right:] = 1 - cand[candidate_right:]
    return y, Predictions(labels=cand, classes=[0, 1]), Predictions(labels=champ, classes=[0, 1])


def _brier_world(n: int):
    """The champion says 0.5 everywhere; the candidate leans clearly towards the truth."""
    y = np.tile([0, 1], n // 2)
    confidence = np.tile([0.6, 0.7, 0.8, 0.9, 0.9], n // 5 + 1)[:n]
    cand = np.where(y == 1, confidence, 1 - confidence)
    return y, Predictions(scores=cand, classes=[0, 1]), Predictions(scores=np.full(n, 0.5), classes=[0, 1])


@pytest.mark.parametrize("mode", ["point", "analytic", "bootstrap"])
@pytest.mark.parametrize("world, metric, setting, point_passes, stays", [
    pytest.param(lambda: _accuracy_world(60, 50, 53), "accuracy", "absolute: 0.001", True, False,
                 id="3-of-60-rows-better-is-noise"),
    pytest.param(lambda: _accuracy_world(2000, 1500, 1700), "accuracy", "absolute: 0.01", True, True,
                 id="200-of-2000-rows-better-holds"),
    pytest.param(lambda: _brier_world(400), "brier", "absolute: 0.01", True, True,
                 id="lower-better-clear-gain-holds"),
    pytest.param(lambda: _accuracy_world(2000, 1500, 1700), "accuracy", "absolute: 0.2", False, False,
                 id="point-fail-stays-a-fail"),
])
def test_improvement_statistics_mode(mode, world, metric, setting, point_passes, stays):
    from model_lifecycle.core.evaluation import metric_value

    y, cand_pred, base_pred = world()
    pol = policy(f"  - {{metric: {metric}, improvement: {{{setting}}}}}\n",
                 statistics=f"{{mode: {mode}, bootstrap_samples: 200}}")
    cand = results(metric, metric_value(metric, y, cand_pred, "binary"), n=len(y))
    base = results(metric, metric_value(metric, y, base_pred, "binary"), n=len(y))
    [row] = decide(pol, cand, base, y, cand_pred, base_pred)
    if mode == "point":
        assert row["passed"] is point_passes and row["interval"] is None
        return
    low, high = row["interval"]
    assert low < high and low <= row["delta"] * (1 if metric == "accuracy" else -1) <= high  # gain within it
    assert row["passed"] is (point_passes and stays)
    if point_passes and not stays:
        assert low <= 0 < high
        assert "includes zero: the gain may be noise" in row["reason"]
    elif point_passes:
        assert low > 0 and f"; the whole 95% interval [{low:+.4f}, {high:+.4f}] is an improvement" in row["reason"]
    assert "no improvement" not in row["reason"]


def test_statistics_mode_without_champion_predictions_decides_on_the_point_estimate():
    pol = policy("  - {metric: accuracy, improvement: {absolute: 0.01}}\n", statistics="{mode: analytic}")
    [row] = decide(pol, results("accuracy", 0.9), results("accuracy", 0.8), base_pred=None)
    assert row["passed"] and row["interval"] is None


@pytest.mark.parametrize("setting, field", [
    pytest.param("{absolute: 0}", "absolute", id="absolute-zero"),
    pytest.param("{absolute: 0.0}", "absolute", id="absolute-zero-float"),
    pytest.param("{relative: 0}", "relative", id="relative-zero"),
])
def test_an_improvement_of_zero_is_refused_saying_why_and_what_to_write(setting, field):
    with pytest.raises(BadInput) as info:
        policy(f"  - metric: accuracy\n    improvement: {setting}\n")
    assert info.value.message == (
        f"test-policy.yml:7: gates[0].improvement.{field}: an improvement of 0 is not a requirement; to allow no "
        "drop against the champion use guardrail: {max_drop: 0}, to require some gain give a positive value "
        "(e.g. 0.001), or omit improvement"
    )


@pytest.mark.parametrize("setting, message", [
    pytest.param("{absolute: -0.01}", "improvement.absolute: must be positive, got -0.01; a tolerated drop is "
                                      "guardrail: {max_drop: 0.01}", id="negative"),
    pytest.param("{relative: 1.5}", "improvement.relative: is a fraction of the champion's value, at most 1, got 1.5",
                 id="relative-above-one"),
])
def test_an_improvement_out_of_range_says_why(setting, message):
    with pytest.raises(BadInput) as info:
        policy(f"  - {{metric: accuracy, improvement: {setting}}}\n")
    assert message in info.value.message


def test_a_guardrail_of_zero_is_the_way_to_say_not_worse():
    pol = policy("  - {metric: accuracy, guardrail: {max_drop: 0, slices: false}}\n")
    [row] = decide(pol, results("accuracy", 0.80), results("accuracy", 0.80))
    assert row["passed"] and row["rule"] == "drop ≤ 0"


# --- guardrail -------------------------------------------------------------------------------------

CHAMPION = results("accuracy", 0.80, A=(0.82, 500), B=(0.70, 300), C=(None, 40), tiny=(0.9, 5, True))
CANDIDATE = {
    "within": results("accuracy", 0.79, A=(0.81, 500), B=(0.69, 300), C=(None, 40), tiny=(0.1, 5, True), new=(0.1, 50)),
    "exactly-at-max-drop": results("accuracy", 0.75, A=(0.77, 500), B=(0.65, 300), C=(None, 40), tiny=(0.1, 5, True)),
    "over-in-one-slice": results("accuracy", 0.85, A=(0.90, 500), B=(0.60, 300), C=(None, 40), tiny=(0.1, 5, True)),
    "over-overall": results("accuracy", 0.70, A=(0.82, 500), B=(0.70, 300), C=(None, 40), tiny=(0.1, 5, True)),
}


@pytest.mark.parametrize("case, slices, failed", [
    pytest.param("within", True, [], id="within-every-slice"),
    pytest.param("exactly-at-max-drop", True, [], id="exactly-at-max-drop"),
    pytest.param("over-in-one-slice", True, ["B"], id="over-in-one-slice"),
    pytest.param("over-in-one-slice", False, [], id="over-in-one-slice-but-slices-off"),
    pytest.param("over-overall", True, [OVERALL], id="over-overall"),
    pytest.param("over-overall", False, [OVERALL], id="over-overall-slices-off"),
])
def test_guardrail_overall_and_by_slice(case, slices, failed):
    pol = policy(f"  - {{metric: accuracy, guardrail: {{max_drop: 0.05, slices: {str(slices).lower()}}}}}\n")
    rows = decide(pol, CANDIDATE[case], CHAMPION)
    # 'tiny' has too little data and 'new' is missing in the champion's results: no rows for either;
    # 'C' is undefined (one class only) on both sides: a skipped, passed row.
    assert [r["slice"] for r in rows] == ([OVERALL, "A", "B", "C"] if slices else [OVERALL])
    assert [r["slice"] for r in rows if not r["passed"]] == failed
    assert all(r["kind"] == "guardrail" and r["required"] == -0.05 and r["rule"] == "drop ≤ 0.05" for r in rows)
    by_slice = {r["slice"]: r for r in rows}
    if slices:
        assert by_slice["C"]["skipped"] and "undefined in C" in by_slice["C"]["reason"]
        assert by_slice["B"]["reason"].startswith("accuracy in slice B (n=300): ")
    assert by_slice[OVERALL]["reason"].startswith("accuracy overall: ")
    for row in rows:
        if not row.get("skipped"):
            assert ("worse than" if row["slice"] in failed else "within") in row["reason"]


@pytest.mark.parametrize("candidate, passed", [
    pytest.param(10.5, True, id="lower-better-small-rise-within"),
    pytest.param(11.0, True, id="lower-better-rise-exactly-at-max-drop"),
    pytest.param(11.2, False, id="lower-better-rise-over-max-drop"),
    pytest.param(9.0, True, id="lower-better-improved"),
])
def test_guardrail_lower_is_better(candidate, passed):
    pol = policy("  - {metric: rmse, guardrail: {max_drop: 1.0}}\n", task="regression")
    [row] = decide(pol, results("rmse", candidate), results("rmse", 10.0))
    assert row["passed"] is passed and row["higher_is_better"] is False
    assert row["delta"] == pytest.approx(candidate - 10.0)


# --- no champion -----------------------------------------------------------------------------------


def test_no_champion_skips_and_passes_improvement_and_guardrail_once(monkeypatch):
    def must_not_run(ctx):
        raise AssertionError("a rule that needs a champion ran without one")

    pol = policy("  - {metric: accuracy, floor: 0.5, improvement: {absolute: 0.01}, guardrail: {max_drop: 0}}\n"
                 "  - {metric: roc_auc, guardrail: {max_drop: 0}}\n")
    for kind in ("improvement", "guardrail"):
        must_not_run.needs_baseline = True
        monkeypatch.setitem(rules.RULES, kind, must_not_run)
    rows = decide(pol, results("accuracy", 0.6, A=(0.1, 500)), None)
    assert [(r["gate"], r["kind"], r["slice"], r.get("skipped", False), r["passed"]) for r in rows] == [
        (0, "floor", OVERALL, False, True),
        (0, "improvement", OVERALL, True, True),
        (0, "guardrail", OVERALL, True, True),
        (1, "guardrail", OVERALL, True, True),
    ]
    assert rows[1]["reason"] == "no champion yet: improvement on accuracy not applied"
    assert rows[3]["reason"] == "no champion yet: guardrail on roc_auc not applied"
    assert all(r["baseline"] is None and r["delta"] is None for r in rows)


# --- a new rule kind -------------------------------------------------------------------------------


class CeilingGate(Gate):
    """What policy.py would gain for a new rule kind: one field on the gate."""

    ceiling: float | None = None


@pytest.fixture()
def ceiling_rule(monkeypatch):
    """Register a 'ceiling' rule (the metric must stay at or below a value) in a copy of the table."""
    monkeypatch.setattr(rules, "RULES", dict(rules.RULES))

    @rules.rule("ceiling")
    def ceiling(ctx: rules.Context) -> list[dict]:
        row = ctx.row("ceiling", with_baseline=False)
        row["required"] = ctx.settings("ceiling")
        row["passed"] = row["candidate"] is not None and row["candidate"] <= row["required"]
        row["reason"] = f"{ctx.metric} {rules.fmt(row['candidate'])} {'under' if row['passed'] else 'over'} the ceiling"
        return [row]

    return ceiling


def test_a_gate_field_unknown_to_the_table_is_not_a_rule():
    with pytest.raises(ValidationError, match="a gate needs at least one of 'floor', 'improvement', 'guardrail'"):
        CeilingGate(metric="accuracy", ceiling=0.9)


@pytest.mark.parametrize("value, passed", [pytest.param(0.85, True, id="under"), pytest.param(0.95, False, id="over")])
def test_a_new_rule_kind_registered_in_the_table_is_applied_by_decide(ceiling_rule, value, passed):
    base = policy("  - {metric: accuracy, floor: 0.5}\n")
    gates = [base.gates[0], CeilingGate(metric="accuracy", floor=0.6, ceiling=0.9), CeilingGate(metric="accuracy", ceiling=0.9)]
    pol = base.model_copy(update={"gates": gates})
    assert gates[1].rule_kinds() == ["floor", "ceiling"] and gates[0].rule_kinds() == ["floor"]
    rows = decide(pol, results("accuracy", value), results("accuracy", 0.8))
    assert [(r["gate"], r["kind"]) for r in rows] == [(0, "floor"), (1, "floor"), (1, "ceiling"), (2, "ceiling")]
    assert [r["passed"] for r in rows if r["kind"] == "ceiling"] == [passed, passed]
    built = verdict.build(model="m", candidate={"version": "2"}, baseline=None, policy=pol, policy_path="nowhere.yml",
                          holdout={"path": "h.csv", "sha256": "sha256:0", "rows": 1000}, checks=rows,
                          cand_results=results("accuracy", value), base_results=None)
    assert built["passed"] is passed and built["failures"] == ([] if passed else ["accuracy 0.9500 over the ceiling"] * 2)


def test_a_new_rule_kind_that_needs_a_champion_is_skipped_without_one(ceiling_rule):
    ceiling_rule.needs_baseline = True
    pol = policy("  - {metric: accuracy, floor: 0.5}\n")
    pol = pol.model_copy(update={"gates": [CeilingGate(metric="accuracy", ceiling=0.9)]})
    [row] = decide(pol, results("accuracy", 0.95), None)
    assert row["skipped"] and row["passed"] and row["reason"] == "no champion yet: ceiling on accuracy not applied"


# --- plain values in rows and reasons --------------------------------------------------------------


def test_numpy_scalars_become_python_values_in_rows_and_reasons():
    assert rules.plain(np.int64(0)) == 0 and type(rules.plain(np.int64(0))) is int
    assert repr(rules.plain(np.int64(0))) == "0" and rules.plain("A") == "A"
    pol = policy("  - {metric: accuracy, floor: 0.5, guardrail: {max_drop: 0.0}}\n")
    cand = {OVERALL: SliceResult(OVERALL, np.int64(100), False, {"accuracy": {"value": np.float64(0.9)}}),
            "label.0": SliceResult("label.0", np.int64(40), False, {"accuracy": {"value": np.float64(0.5)}})}
    base = {OVERALL: SliceResult(OVERALL, np.int64(100), False, {"accuracy": {"value": np.float64(0.8)}}),
            "label.0": SliceResult("label.0", np.int64(40), False, {"accuracy": {"value": np.float64(0.6)}})}
    rows = decide(pol, cand, base)
    assert [type(r["n"]) for r in rows] == [int, int, int]
    assert all(type(r["candidate"]) is float and "np." not in r["reason"] for r in rows)
    assert rows[2]["reason"].startswith("accuracy in slice label.0 (n=40): 0.5000 vs champion 0.6000")
    json.dumps(rows)  # no default=str needed
