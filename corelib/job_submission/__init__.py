"""Submit jobs to a running head over HTTP, as ``ray.job_submission`` does.

    from minray.job_submission import JobSubmissionClient, JobStatus
    client = JobSubmissionClient("http://127.0.0.1:8265")
    sid = client.submit_job(entrypoint="python script.py",
                            runtime_env={"working_dir": "./", "env_vars": {"K": "v"}})
    client.get_job_status(sid)            # JobStatus.RUNNING ... JobStatus.SUCCEEDED
    print(client.get_job_logs(sid))

The head's job server (``minray start --head``, minray/_private/job_server.py)
runs each job's entrypoint as a shell command on the head. Every request
carries the cluster token (``Authorization: Bearer <token>``): the client takes
it from ``headers``, else ``$MINRAY_CLUSTER_TOKEN``, else the token file of the
head running on this machine.
"""

from .models import DriverInfo, JobDetails, JobInfo, JobStatus, JobType
from .sdk import JobSubmissionClient

__all__ = ["DriverInfo", "JobDetails", "JobInfo", "JobStatus", "JobSubmissionClient",
           "JobType"]
