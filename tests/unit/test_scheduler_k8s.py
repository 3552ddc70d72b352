"""The Kubernetes CronJobs in deploy/ are generated from schedules.yaml, never copied: the
committed manifest must equal what `collectwise scheduler k8s` makes from the committed
schedule now, and it must carry the scheduler's guarantees."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from collectwise import scheduler_jobs
from collectwise.settings import SchedulerSettings
from monitoring.scheduler.kubernetes import SCHEDULE_MOUNT, Target, render
from monitoring.scheduler.schedule import load_schedule

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kubernetes" / "cronjobs.yaml"


def _generated() -> str:
    # The defaults of `collectwise scheduler k8s`, whatever this shell's environment says.
    defaults = SchedulerSettings()
    schedule = load_schedule(REPO / "schedules.yaml", scheduler_jobs.kinds(), defaults.timezone)
    target = Target(
        timezone=defaults.timezone, misfire_grace_seconds=defaults.misfire_grace_seconds
    )
    return render(schedule, target)


def test_the_committed_manifest_is_what_the_generator_makes_now() -> None:
    assert MANIFEST.read_text() == _generated(), (
        "deploy/kubernetes/cronjobs.yaml is out of date: run "
        "`collectwise scheduler k8s --out deploy/kubernetes/cronjobs.yaml`"
    )


def test_each_job_is_a_cronjob_with_the_schedulers_guarantees() -> None:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    configmap, *cronjobs = documents
    schedule_text = configmap["data"]["schedules.yaml"]
    assert schedule_text == (REPO / "schedules.yaml").read_text()
    jobs = yaml.safe_load(schedule_text)["jobs"]
    assert [c["metadata"]["name"] for c in cronjobs] == [f"collectwise-{n}" for n in jobs]
    for cronjob, (name, entry) in zip(cronjobs, jobs.items(), strict=True):
        spec = cronjob["spec"]
        assert cronjob["kind"] == "CronJob" and cronjob["apiVersion"] == "batch/v1"
        assert spec["schedule"] == entry["cron"]
        assert spec["concurrencyPolicy"] == "Forbid"  # an overlapping run is refused
        assert spec["startingDeadlineSeconds"] == 3600  # a missed run is caught up once
        assert spec["suspend"] is not entry.get("enabled", True)
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["collectwise", "scheduler", "run-once", name]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["COLLECTWISE_SCHEDULER__SCHEDULE_FILE"] == f"{SCHEDULE_MOUNT}/schedules.yaml"
        assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"]
