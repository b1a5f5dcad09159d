"""Where tasks queued before stop 18 find their function: the task now lives with the job
machinery (core/services/jobs.py), and the job kinds in core/job_kinds.py."""

from core.services.jobs import job_runners, job_task

__all__ = ["job_runners", "job_task"]
