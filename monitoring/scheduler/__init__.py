"""Operations that run themselves: the schedule file, the scheduler, heartbeats and the
watchdog.

Modules: schedule (schedules.yaml: entries, cron checks, the interval a cron promises),
runner (one run: overlap refused, recorded in pipeline_runs, a heartbeat on success),
engine (APScheduler with its job store in the monitoring database), watchdog (the dead man's
switch over the heartbeats, alerting through monitoring.job_finish), status (what the
console and `collectwise scheduler list` show) and kubernetes (CronJobs generated from the
same schedule). Which jobs exist is the console script's business (collectwise.scheduler_jobs):
it composes them from the commands' own functions and hands them to this package.
"""
