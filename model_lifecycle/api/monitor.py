"""The monitor step: one production window against the monitored version's reference profile,
recorded in MLflow, and the policy's action on a breach (notify, or roll @champion back).

``monitor`` reads the window column by column (``core.monitoring.window``), judges it
(``core.monitoring.assess``), records it as a run linked to the version (``core.monitoring.records``),
and decides with the recorded history (``core.monitoring.history``) whether a breach acts: only after
the policy's number of breached windows in a row, never within the cool-down of the last rollback.
The rollback itself is the lifecycle core's: a compare-and-set against the version that was
judged, audited with the window's run and the digest of its findings as evidence.
A breach exits 1 (whatever was done about it); healthy, warning and too-little-data windows exit 0.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from model_lifecycle import settings, tags
from model_lifecycle.adapters import registry
from model_lifecycle.core.lifecycle import AliasNames
from model_lifecycle.errors import EXIT_OK, EXIT_REFUSED, BadInput, Refused
from model_lifecycle.results import Result

CHART_WINDOWS = 12  # windows in the job summary's chart


@dataclass(frozen=True)
class MonitorRequest:
    model: str
    window: str  # capture folder, Parquet/CSV file, glob or URI
    policy: str = "model-policy.yml"
    version: str | None = None  # default: the version behind @champion
    labels: str | None = None  # late labels, joined by request id
    label_column: str | None = None  # default: the policy's holdout.target
    since: str | None = None  # ISO times; default: the whole window
    until: str | None = None
    reference: str | None = None  # hold-out for a version that has no reference profile yet
    output: str = "monitoring.json"
    report: str = "monitoring.md"
    act: bool = True  # take the policy's action on a breach (False: judge and record; a due rollback is
    # reported as action "rollback-due", for a job that holds the rollback credential)
    log: bool = True  # record the window as an MLflow run (False with act=False: a dry run)
    repo: str | None = None  # OWNER/REPO for GitHub notification channels
    webhook_url: str | None = field(default=None, repr=False)
    actor: str | None = None
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None
    engine: str | None = None  # "local" or "spark" (default: the policy's engine)
    progress: Any = field(default=None, repr=False, compare=False)  # callable(done, total, what); edges show it


@dataclass
class MonitorResult(Result):
    model: str
    version: str
    status: str  # healthy, warning, breach, insufficient_data
    rows: int
    window: dict[str, Any]
    findings: list[dict[str, Any]]
    breach_streak: int
    action: str  # none, waiting (for more breached windows), notify, rollback, rollback-refused, cool-down;
    # without acting (act=False): notify-due, rollback-due
    action_detail: str | None
    rolled_back_to: str | None
    monitoring_run_id: str | None
    findings_sha256: str
    rollback_reason: str | None  # the reason a rollback was (or is due to be) recorded with
    profile_built: bool
    labels: dict[str, Any] | None
    shadow: dict[str, Any] | None
    notes: list[str]
    output_path: str
    report_path: str
    notified: dict[str, Any] | None = None
    summary: str = field(default="", repr=False)

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return EXIT_REFUSED if self.status == "breach" else EXIT_OK


def monitor(request: MonitorRequest) -> MonitorResult:
    from model_lifecycle.core import policy as policies
    from model_lifecycle.core import engines
    from model_lifecycle.core.monitoring import assess, history, local, records
    from model_lifecycle.core.monitoring import window as windows

    policy = policies.load(request.policy)
    settings_ = policy.monitoring
    names = request.aliases.validated()
    since = windows.parse_time(request.since, "--since")
    until = windows.parse_time(request.until, "--until")
    if since and until and until <= since:
        raise BadInput(f"--until ({request.until}) must be after --since ({request.since})")
    engine = engines.chosen(request.engine, policy, "monitor")
    labels = local.read_labels(request.labels) if request.labels and engine == "local" else request.labels
    client = registry.connect(request.tracking_uri)
    model = registry.get_model(client, request.model)
    version = registry.parse_version(request.version, "--version") if request.version else \
        registry.alias_map(model).get(names.champion)
    if version is None:
        raise BadInput(f"model {request.model!r} has no @{names.champion} to monitor", hint="pass --version N")
    mv = registry.get_version(client, request.model, version)
    profile = records.load_profile(client, mv)
    built = False
    if profile is None:
        if not request.reference:
            raise BadInput(f"v{version} of {request.model!r} has no reference profile (it was evaluated before "
                           "profiles existed)", hint="pass --reference HOLDOUT once to build it from the hold-out")
        profile = build_reference(client, policy, request.model, version, mv, request.reference)
        built = True
    if engine == "spark":  # imported only when chosen: pyspark is an optional extra
        from model_lifecycle.core.engines import spark_window

        reader = spark_window.open_window(request.window, since=since, until=until, version=version)
    else:
        reader = local.LocalReader(windows.open_window(request.window, since=since, until=until, version=version))
    now = datetime.now(timezone.utc)
    judged = assess.assess(policy, profile, reader, labels=labels, label_column=request.label_column, now=now,
                           progress=request.progress)
    start, end = reader.time_span()
    end = end or now
    findings_sha = hashlib.sha256(json.dumps(
        {"status": judged.status, "findings": judged.findings}, sort_keys=True, default=str).encode()).hexdigest()
    earlier = records.window_history(client, settings_.experiment, request.model, version) if request.log else []
    end_ms = int(end.timestamp() * 1000)
    streak = history.breach_streak([*earlier, history.WindowRecord(end_ms, judged.status)])
    metrics = judged.metrics()
    psis = [v for k, v in metrics.items() if k.startswith("drift/") and k.endswith("/psi") and "/prediction/" not in k]
    if psis:
        metrics["drift/max_psi"] = max(psis)

    window_info = {"source": request.window, "start": start.isoformat() if start else None, "end": end.isoformat(),
                   "rows": judged.rows, "engine": engine}
    run_id = None
    if request.log:
        run_id = records.log_window(
            client, experiment=settings_.experiment, name=request.model, version=version, start=start, end=end,
            status=judged.status, findings_sha256=findings_sha, metrics=metrics, documents={},
            extra_tags={})
    action, detail, target = _act(client, request, policy, names, version, judged, streak, run_id, findings_sha, now)
    chart = _chart(earlier, metrics, end)
    result = MonitorResult(
        model=request.model, version=version, status=judged.status, rows=judged.rows, window=window_info,
        findings=judged.findings, breach_streak=streak, action=action, action_detail=detail, rolled_back_to=target,
        monitoring_run_id=run_id, findings_sha256=findings_sha,
        rollback_reason=_reason(judged) if action in ("rollback", "rollback-due", "rollback-refused") else None,
        profile_built=built, labels=judged.labels, shadow=judged.shadow, notes=judged.notes,
        output_path=str(Path(request.output).resolve()), report_path=str(Path(request.report).resolve()),
    )
    result.summary = render_report(result, chart)
    document = json.dumps({**result.to_dict(), "features": judged.features, "prediction": judged.prediction,
                           "performance": judged.performance}, indent=2, sort_keys=True, default=str)
    Path(request.output).write_text(document + "\n", encoding="utf-8")
    Path(request.report).write_text(result.summary, encoding="utf-8")
    if run_id:
        with registry.mlflow_errors():
            client.log_text(run_id, document, "monitoring.json")
            client.log_text(run_id, result.summary, "monitoring.md")
            client.set_tag(run_id, tags.RUN_WINDOW_ACTION, action)
            for key, value in ((tags.MONITOR_STATUS, judged.status), (tags.MONITOR_LAST_RUN_ID, run_id),
                               (tags.MONITOR_LAST_WINDOW_END, end.isoformat())):
                client.set_model_version_tag(request.model, version, key, value)
    if judged.status == assess.BREACH and request.act:
        result.notified = _notify(request, result)
    if judged.status == assess.BREACH:
        raise Refused(
            f"{request.model} v{version}: monitoring breach in window ending {end:%Y-%m-%d %H:%M} UTC "
            f"({_headline(judged.findings)}); action: {action}" + (f" ({detail})" if detail else ""),
            result=result, title="Monitoring breach",
        )
    return result


def build_reference(client: Any, policy: Any, name: str, version: str, mv: Any, holdout_path: str) -> dict[str, Any]:
    """Evaluate the version on the given hold-out once, and store its profile like the gate does."""
    from model_lifecycle.api.gate import DEFAULT_EXPERIMENT
    from model_lifecycle.core import evaluation

    uri = f"models:/{name}/{version}"
    holdout = evaluation.evaluate_holdout(policy, [uri], holdout_path)
    evaluated = holdout.evaluated[uri]
    run_id = evaluation.log_evaluation(
        client, experiment=DEFAULT_EXPERIMENT, name=name, version=version, model_uri=uri, source=mv.source,
        results=evaluated.results, holdout=holdout.info, documents={})
    return store_reference(client, policy, name, version, run_id, holdout, evaluated)


def store_reference(client: Any, policy: Any, name: str, version: str, run_id: str, holdout: Any,
                    evaluated: Any) -> dict[str, Any]:
    """The version's reference profile from an evaluation on the hold-out, stored in its evaluation run.

    Metrics are those of the whole hold-out; the feature and prediction distributions are those of
    its uniform sample (all rows up to ``evaluation.SAMPLE_ROWS``)."""
    from model_lifecycle.core import evaluation
    from model_lifecycle.core.monitoring import profile as profiles
    from model_lifecycle.core.monitoring import records
    from model_lifecycle.core.verdict import serialise_results

    features = evaluation.feature_frame(evaluated.model, holdout.sample, policy.holdout.target,
                                        policy.checks.require_signature)
    sampled = evaluation.take(evaluated.predictions, holdout.sample_rows)
    profile = profiles.build(
        model=name, version=version, task=policy.task, features=features, predictions=sampled,
        results=serialise_results(evaluated.results), holdout=holdout.info,
        slices={"columns": policy.slices.columns, "intersections": policy.slices.intersections},
        classes=evaluated.predictions.classes or evaluated.model.classes,
    )
    records.store_profile(client, name, version, run_id, profile)
    return profile


def _act(client: Any, request: MonitorRequest, policy: Any, names: AliasNames, version: str, judged: Any,
         streak: int, run_id: str | None, findings_sha: str, now: datetime) -> tuple[str, str | None, str | None]:
    """What the breach leads to: (action, detail, version rolled back to)."""
    from model_lifecycle.core import audit, lifecycle
    from model_lifecycle.core.monitoring import history

    settings_ = policy.monitoring
    if judged.status != "breach":
        return "none", None, None
    if streak < settings_.consecutive_breaches:
        return "waiting", f"{streak} of {settings_.consecutive_breaches} breached windows in a row", None
    if settings_.action == "notify":
        return ("notify", None, None) if request.act else (
            "notify-due", "not notified here (judged without acting); the workflow's next step tells the team", None)
    left = history.cooldown_left_ms(audit.read(client, request.model), int(now.timestamp() * 1000),
                                    settings_.cooldown_hours)
    if left:
        return "cool-down", (f"the model was rolled back less than {settings_.cooldown_hours:g} h ago; automatic "
                             f"rollback allowed again in {left / 3_600_000:.1f} h"), None
    if not request.act:
        return "rollback-due", ("not rolled back here (judged without acting); a job holding the rollback "
                                "credential rolls back with this window's run as evidence"), None
    reason = _reason(judged)
    try:
        change = lifecycle.rollback(
            client, request.model, names, reason=reason, actor=request.actor or "model-lifecycle monitor",
            expect_champion=version, refuse_archived=True,
            evidence={"monitoring_run": run_id or "not recorded", "findings": findings_sha},
            details={"window_status": judged.status, "breach_streak": streak,
                     "findings": [_line(f) for f in judged.findings[:10]]},
        )
    except (Refused, BadInput) as refused:
        return "rollback-refused", refused.one_line(), None
    return "rollback", change.message, change.version


def _reason(judged: Any) -> str:
    return f"monitoring breach: {_headline(judged.findings, 3)}"[:5000]


def _headline(findings: list[dict[str, Any]], limit: int = 2) -> str:
    breaches = [f for f in findings if f["level"] == "breach"] or findings
    text = "; ".join(_line(f) for f in breaches[:limit])
    return text + (f"; {len(breaches) - limit} more" if len(breaches) > limit else "")


def _line(finding: dict[str, Any]) -> str:
    value, threshold = finding.get("value"), finding.get("threshold")
    shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
    limit = f" (threshold {threshold:.4g})" if isinstance(threshold, (int, float)) else ""
    subject = finding["subject"]
    where = f"slice {subject}" if finding["check"] in ("performance", "shadow") else repr(subject)
    return f"{finding['check']} {where} {finding['statistic']} {shown}{limit}"


def _chart(earlier: list[Any], metrics: dict[str, float], end: datetime) -> dict[str, Any] | None:
    """The monitored metric over the last windows: the first live metric when labels are joined,
    else the largest feature drift (PSI). Earlier values come with the recorded windows' search:
    no request per window."""
    key = next((k for k in metrics if k.startswith("live/") and k.count("/") == 1), None) or \
        ("drift/max_psi" if "drift/max_psi" in metrics else None)
    if key is None:
        return None
    previous = sorted(earlier, key=lambda r: r.end_ms)[-(CHART_WINDOWS - 1):]
    points = [(datetime.fromtimestamp(r.end_ms / 1000, timezone.utc), r.metrics[key])
              for r in previous if key in r.metrics]
    points.append((end, metrics[key]))
    return {"metric": key, "points": points}


def render_report(result: MonitorResult, chart: dict[str, Any] | None) -> str:
    from jinja2 import Environment

    template = Environment(trim_blocks=True, lstrip_blocks=True, autoescape=False).from_string(REPORT)
    return template.render(r=result, chart=chart, line=_line)


REPORT = """\
### Monitoring {{ r.model }} v{{ r.version }}: {{ r.status | replace('_', ' ') }}

Window `{{ r.window.source }}` {{ r.window.start or '?' }} → {{ r.window.end }}: {{ r.rows }} rows
{%- if r.labels %}, {{ r.labels.joined }} with labels{% endif %}.
{% if r.action not in ('none',) %}

**Action: {{ r.action }}**{% if r.action_detail %} — {{ r.action_detail }}{% endif %}

{% endif %}
{% for note in r.notes %}
- {{ note }}
{% endfor %}
{% if r.findings %}

| level | check | subject | statistic | value | threshold | detail |
|---|---|---|---|---|---|---|
{% for f in r.findings %}
| {{ f.level }} | {{ f.check }} | `{{ f.subject }}` | {{ f.statistic }} | {{ '%.4g' % f.value if f.value is number else f.value }} | {{ '%.4g' % f.threshold if f.threshold is number else '' }} | {{ f.detail or '' }} |
{% endfor %}
{% elif r.status == 'healthy' %}

No finding: every feature, the predictions{% if r.labels %} and the live metrics{% endif %} are within the policy's thresholds.
{% endif %}
{% if r.shadow and r.shadow.agreement is not none %}

Shadow challenger agreed with the champion on {{ '%.1f' % (100 * r.shadow.agreement) }}% of {{ r.shadow.rows }} rows.
{% endif %}
{% if chart and chart.points | length > 1 %}

```mermaid
xychart-beta
    title "{{ chart.metric }} over the last {{ chart.points | length }} windows"
    x-axis [{% for when, _ in chart.points %}"{{ when.strftime('%m-%d %H:%M') }}"{% if not loop.last %}, {% endif %}{% endfor %}]
    y-axis "{{ chart.metric.split('/')[-1] }}"
    line [{% for _, value in chart.points %}{{ '%.4f' % value }}{% if not loop.last %}, {% endif %}{% endfor %}]
```
{% endif %}
"""


def _notify(request: MonitorRequest, result: MonitorResult) -> dict[str, Any]:
    """Tell the team through the gate's channels; the job summary already holds the report (the edge
    writes it), so that channel is left out here. A failing channel is a warning, never an error."""
    from model_lifecycle.adapters import channels
    from model_lifecycle.api import notify

    event = "rolled-back" if result.action == "rollback" else "monitor-breach"
    message = (f"rolled back to v{result.rolled_back_to}" if result.rolled_back_to else
               f"monitoring breach, action: {result.action}")
    composed = notify.compose(notify.NotifyRequest(
        request.model, event, version=result.version, report_text=result.summary, message=message,
        repo=request.repo, webhook_url=request.webhook_url or settings.WEBHOOK_URL.get()))
    chosen = {name: cls for name, cls in channels.REGISTRY.items() if not cls.reports_warnings}
    sent = channels.send_all(composed, chosen)
    return {"sent": sorted(n for n, r in sent.items() if r["ok"]),
            "warnings": [f"{n}: {r['warning']}" for n, r in sent.items() if not r["ok"]]}
