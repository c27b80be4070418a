"""The local job supervisor: what SageMaker does around a training container, on this machine.

``python -m smglm.launch.supervisor JOB_DIR`` is started detached by
:class:`~smglm.launch.local.LocalBackend` (or forked from the home's warm worker). It moves the
job through SageMaker's statuses (Starting, Downloading, Training, Uploading, then Completed,
Failed or Stopped), lays out ``JOB_DIR/ml`` as ``/opt/ml``, starts ``train`` with the job's
environment through a launcher (:mod:`smglm.launch.processes`: a fresh interpreter, a fork of
the warm worker, or the job's image with ``docker``/``podman run``), and on SIGTERM (a stop)
forwards SIGTERM to training and SIGKILLs it after the grace period, as ``docker stop`` does on
SageMaker. It holds ``JOB_DIR/runner.lock`` for its whole life (handed over by whoever started
it): the backend reads a job's supervisor as alive while that lock is held. The runtime is never
imported here.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from smglm.launch.local import (
    STOP_FILE,
    TRAIN_PID_FILE,
    disk_full,
    end_tracking_run,
    now_iso,
    read_json,
    write_json_atomic,
)
from smglm.launch.processes import (
    ChildProcess,
    ColdLauncher,
    ContainerLauncher,
    Launcher,
    TrainingRequest,
    end_recorded,
    record_process,
    terminate_later,
)
from smglm.launch.spec import JobSpec
from smglm.launch.storage import open_storage, pack_dir
from smglm.launch.warm import WarmLauncher
from smglm.redaction import RedactingStream, redact, restore_secrets, secret_values

__all__ = ["FolderGone", "Supervisor", "main"]


class FolderGone(Exception):
    """The job's folder was deleted while the job ran."""


def no_space_reason(exc: BaseException) -> str | None:
    """The failure reason for a full disk (ENOSPC), naming the file, else None."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = exc.filename or "a file"
        return (
            f"ClientError: no space left on device (ENOSPC) writing {where}: free space on that "
            "disk and launch the job again"
        )
    return None


class Supervisor:
    """One local training job from download to upload; ``launchers`` are tried in order to
    start ``train`` (default: the job's image with ``runner``, else a fork of ``warm_home``'s
    warm worker, else a fresh interpreter)."""

    def __init__(
        self,
        folder: Path,
        grace: float,
        warm_home: str | None = None,
        runner: str | None = None,
        launchers: list[Launcher] | None = None,
    ) -> None:
        self.folder = folder
        self.grace = grace
        self.spec = JobSpec.from_request(read_json(folder / "spec.json"))
        # spec.json holds no credential: the backend passed them through this environment
        self.environment = restore_secrets(self.spec.environment, os.environ)
        self.secrets = secret_values(os.environ)
        self.ml = folder / "ml"
        self.log_path = folder / "logs.txt"
        self.stop_requested = threading.Event()
        self.launchers = launchers or _default_launchers(warm_home, runner)
        self.child: ChildProcess | None = None
        self.lock = threading.Lock()
        self.timed_out = False
        self.billable = 0

    # -- state ---------------------------------------------------------------------------
    def update(self, **fields: Any) -> None:
        with self.lock:
            state = read_json(self.folder / "state.json")
            state.update(fields)
            state["LastModifiedTime"] = now_iso()
            write_json_atomic(self.folder / "state.json", state)

    def secondary(self, status: str, message: str) -> None:
        with self.lock:
            state = read_json(self.folder / "state.json")
            now = now_iso()
            transitions = state.setdefault("SecondaryStatusTransitions", [])
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
            state["SecondaryStatus"] = status
            state["LastModifiedTime"] = now
            write_json_atomic(self.folder / "state.json", state)
        self.log(f"[smglm-local] {status}: {message}")

    def log(self, line: str) -> None:
        """Append ``line`` to the job's log; a log that cannot be written (full disk, deleted
        folder) never stops the job from ending properly."""
        with contextlib.suppress(OSError), self.log_path.open("a", encoding="utf-8") as f:
            f.write(redact(line.rstrip("\n"), self.secrets) + "\n")

    def folder_gone(self) -> bool:
        """Whether the job's folder (its state) was deleted."""
        return not (self.folder / "state.json").exists()

    # -- stages --------------------------------------------------------------------------
    def download(self) -> None:
        spec = self.spec
        self.secondary("Downloading", "Downloading input data")
        config_dir = self.ml / "input" / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (self.ml / "model").mkdir(parents=True, exist_ok=True)
        (self.ml / "output" / "data").mkdir(parents=True, exist_ok=True)
        write_json_atomic(config_dir / "hyperparameters.json", spec.hyperparameters)
        write_json_atomic(
            config_dir / "inputdataconfig.json",
            {
                c.name: {
                    "TrainingInputMode": c.input_mode,
                    "S3DistributionType": "FullyReplicated",
                    "RecordWrapperType": "None",
                    **({"ContentType": c.content_type} if c.content_type else {}),
                }
                for c in spec.channels
            },
        )
        write_json_atomic(
            config_dir / "resourceconfig.json",
            {
                "current_host": "algo-1",
                "current_instance_type": spec.instance_type,
                "current_group_name": "homogeneousCluster",
                "hosts": ["algo-1"],
                "instance_groups": [
                    {
                        "instance_group_name": "homogeneousCluster",
                        "instance_type": spec.instance_type,
                        "hosts": ["algo-1"],
                    }
                ],
                "network_interface_name": "eth0",
            },
        )
        for channel in spec.channels:
            if self.stop_file_seen():
                self.stop_requested.set()
                return
            dest = self.ml / "input" / "data" / channel.name
            files = open_storage(channel.uri).download_prefix(channel.uri, dest)
            size = sum(p.stat().st_size for p in files)
            self.log(f"[smglm-local] channel {channel.name}: {len(files)} file(s), {size:,} bytes")

    def training_request(self) -> TrainingRequest:
        """The job's environment: as SageMaker sets it in the container (``job_env``), and on
        this machine (``env``: this process's, with the job's on top)."""
        spec = self.spec
        job_env = {k: v for k, v in self.environment.items() if k != "MLFLOW_RUN_ID"}
        job_env["TRAINING_JOB_NAME"] = spec.name
        job_env["TRAINING_JOB_ARN"] = f"arn:smglm:local:training-job/{spec.name}"
        job_env["PYTHONUNBUFFERED"] = "1"
        env = {**os.environ, **job_env}
        # this supervisor logs a local job's results to MLflow itself, from a warm client
        # (training would import mlflow and open the store once more)
        env.pop("MLFLOW_RUN_ID", None)
        env["SMGLM_ML_ROOT"] = str(self.ml)
        # numpy asks for transparent huge pages on large arrays; in a fresh process the kernel
        # then compacts memory on first touch, which slows a job's data checks and fit at 1M
        # rows (benchmarks/README.md, Launch). The job's own setting wins.
        env.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
        # glibc hands arrays over 128 kB to mmap and back to the kernel when freed, so each
        # new array is faulted in page by page; a job's arrays up to 32 MB (4M rows of float64)
        # come from the heap instead and are reused: 55 % fewer page faults in a 1M-row fit.
        # The job's own settings win.
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(32 << 20))
        env.setdefault("MALLOC_TRIM_THRESHOLD_", str(1 << 30))
        return TrainingRequest(
            name=spec.name,
            image_uri=spec.image_uri,
            folder=self.folder,
            ml=self.ml,
            log=self.log_path,
            env=env,
            job_env=job_env,
        )

    def train(self) -> int:
        self.secondary("Training", "Training image download completed. Training in progress.")
        request = self.training_request()
        started = time.monotonic()
        self.update(TrainingStartTime=now_iso())
        with self.log_path.open("ab") as out:
            for launcher in self.launchers:
                self.child = launcher.start(request, out, self.log)
                if self.child is not None:
                    break
            child = self.child
            if child is None:
                raise RuntimeError("no launcher could start training")
            # whoever finds this supervisor gone ends its training (pid and start time)
            with contextlib.suppress(OSError):
                record_process(self.folder / TRAIN_PID_FILE, child.pid)
            deadline = started + self.spec.max_runtime_seconds
            timed_out = False
            while True:
                try:
                    code = child.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if self.stop_file_seen():
                    self.request_stop("StopTrainingJob")
                if self.folder_gone():
                    self.kill_training()
                    raise FolderGone(str(self.folder))
                if not timed_out and time.monotonic() > deadline:
                    timed_out = True
                    self.log("[smglm-local] MaxRuntimeInSeconds reached: stopping training")
                    self.update(TrainingJobStatus="Stopping")
                    self._terminate()
        self.billable = max(1, math.ceil(time.monotonic() - started))
        self.timed_out = timed_out
        return code

    def kill_training(self) -> None:
        """SIGKILL training and its process group now, and reap it."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        if not end_recorded(self.folder / TRAIN_PID_FILE):
            with contextlib.suppress(OSError):
                child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)

    def _terminate(self) -> None:
        """SIGTERM, then SIGKILL after the grace period (``docker stop -t grace``)."""
        if self.child is not None:
            terminate_later(self.child, self.grace, self.log)

    def stop_file_seen(self) -> bool:
        return (self.folder / STOP_FILE).exists()

    def request_stop(self, why: str) -> None:
        if self.stop_requested.is_set():
            return
        self.stop_requested.set()
        with contextlib.suppress(OSError):  # (a full disk) the stop goes on regardless
            self.update(TrainingJobStatus="Stopping")
        self.log(f"[smglm-local] {why}: sending SIGTERM to training")
        self._terminate()

    def on_sigterm(self, signum: int, frame: Any) -> None:
        self.request_stop("SIGTERM received")

    def upload(self, include_model: bool) -> dict[str, Any]:
        self.secondary("Uploading", "Uploading generated training model")
        spec = self.spec
        out: dict[str, Any] = {}
        tmp = self.folder / "artifacts"
        try:
            if include_model:
                archive = pack_dir(self.ml / "model", tmp / "model.tar.gz")
                storage = open_storage(spec.model_artifacts_uri)
                storage.upload_file(archive, spec.model_artifacts_uri)
                out["ModelArtifacts"] = {"S3ModelArtifacts": spec.model_artifacts_uri}
            data_dir = self.ml / "output" / "data"
            if data_dir.exists():  # as SageMaker: also when empty, for failed or stopped jobs
                archive = pack_dir(data_dir, tmp / "output.tar.gz")
                storage = open_storage(spec.output_artifacts_uri)
                storage.upload_file(archive, spec.output_artifacts_uri)
                out["OutputArtifacts"] = {"S3OutputArtifacts": spec.output_artifacts_uri}
        except BaseException:  # no partial archive stays behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    def final_metrics(self) -> list[dict[str, Any]]:
        """Apply the metric definitions to the log, as SageMaker does: the last match wins."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        rows = []
        now = now_iso()
        for definition in self.spec.metric_definitions:
            matches = re.findall(definition["Regex"], text)
            if matches:
                last = matches[-1]
                value = last if isinstance(last, str) else last[0]
                try:
                    rows.append(
                        {"MetricName": definition["Name"], "Value": float(value), "Timestamp": now}
                    )
                except ValueError:
                    continue
        return rows

    # -- the whole job -------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        self.warm_tracking()
        try:
            self.download()
            if self.stop_requested.is_set() or self.stop_file_seen():
                return self.finish(
                    "Stopped", "Training job stopped before training started", include_model=False
                )
            code = self.train()
            if self.stop_requested.is_set() or self.timed_out:
                reason = self._failure_text() or "Training job stopped"
                return self.finish("Stopped", reason, include_model=False)
            if code != 0:
                reason = self._failure_text() or _exit_text(code)
                full = disk_full(self.folder)
                if full and "ENOSPC" not in reason and "No space left" not in reason:
                    reason = f"{reason} ({full})"
                return self.finish("Failed", f"AlgorithmError: {reason}", include_model=False)
            return self.finish("Completed", None, include_model=True)
        except FolderGone:
            return self.folder_deleted()
        except Exception as exc:
            if self.folder_gone():
                return self.folder_deleted()
            self.log(traceback.format_exc())
            self.kill_training()
            reason = no_space_reason(exc) or f"ClientError: {type(exc).__name__}: {exc}"
            return self.finish("Failed", reason[:1024], include_model=False)

    def folder_deleted(self) -> int:
        """The job's folder was deleted while it ran: end training and the MLflow run (the one
        record left), with the reason; nothing is written to the deleted folder."""
        self.kill_training()
        os.chdir("/")  # the working folder was the job's: MLflow resolves paths against it
        reason = (
            f"ClientError: the job's folder {self.folder} was deleted while the job ran: "
            "training was ended"
        )
        self.finalize_tracking(
            {
                "TrainingJobName": self.spec.name,
                "TrainingJobStatus": "Failed",
                "FailureReason": reason,
                "TrainingEndTime": now_iso(),
                "Tags": self.spec.tags,
            }
        )
        print(f"[smglm-local] {reason}", file=sys.stderr, flush=True)
        return 1

    def _failure_text(self) -> str | None:
        path = self.ml / "output" / "failure"
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return None
        return text[:1024] if text else None

    def finish(self, status: str, reason: str | None, *, include_model: bool) -> int:
        """Record the job's end: upload what there is, end the MLflow run, write the final
        state. Each step is attempted whatever the others do (a full disk, a deleted folder):
        a job never stays InProgress and its run never stays RUNNING."""
        reason = redact(reason, self.secrets) if reason else reason
        fields: dict[str, Any] = {}
        try:
            fields.update(self.upload(include_model=include_model))
        except Exception as exc:
            self.log(traceback.format_exc())
            if status == "Completed":
                why = no_space_reason(exc) or f"ClientError: upload failed: {exc}"
                status, reason = "Failed", why[:1024]
        try:
            metrics = self.final_metrics() if self.spec.metric_definitions else []
        except OSError:
            metrics = []
        fields["FinalMetricDataList"] = metrics
        final_secondary = status
        if status == "Stopped" and self.timed_out:
            final_secondary = "MaxRuntimeExceeded"
        with contextlib.suppress(OSError, ValueError):
            self.secondary(final_secondary, reason or f"Training job {status.lower()}")
        end = now_iso()
        fields.update(
            TrainingJobStatus=status,
            TrainingEndTime=end,
            BillableTimeInSeconds=self.billable,
        )
        if reason:
            fields["FailureReason"] = redact(reason, self.secrets)
        try:
            with self.lock:
                state = read_json(self.folder / "state.json")
        except (OSError, ValueError):
            if self.folder_gone():
                return self.folder_deleted()
            state = {"TrainingJobName": self.spec.name, "Tags": self.spec.tags}
        transitions = state.get("SecondaryStatusTransitions", [])
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = end
        state.update(fields)
        state["LastModifiedTime"] = end
        # the MLflow run ends before the job shows as ended: whoever sees "Completed" can load
        # the run's model at once
        self.finalize_tracking(state)
        with self.lock:
            write_json_atomic(self.folder / "state.json", state)
        return 0

    def warm_tracking(self) -> None:
        """Import mlflow and open the job's run in a thread while the job trains."""
        run_id = self.environment.get("MLFLOW_RUN_ID")
        uri = self.environment.get("MLFLOW_TRACKING_URI")
        if not run_id or not uri:
            return

        def warm() -> None:
            try:
                from mlflow.tracking import MlflowClient

                MlflowClient(tracking_uri=uri).get_run(run_id)
            except Exception:
                pass  # finalize_tracking reports real problems

        threading.Thread(target=warm, daemon=True).start()

    def finalize_tracking(self, state: dict[str, Any]) -> None:
        """End the job's MLflow run: results from the job's folders if the runtime did not
        log them live, then FINISHED, FAILED or KILLED."""
        run_id = self.environment.get("MLFLOW_RUN_ID")
        uri = self.environment.get("MLFLOW_TRACKING_URI")
        if not run_id or not uri:  # the run as the job's tags name it, if any
            end_tracking_run({**state, "Tags": state.get("Tags") or self.spec.tags})
            return
        try:
            from smglm.tracking.runs import finalize_job_run

            output = self.ml / "output" / "data"
            finalize_job_run(uri, run_id, state, lambda: (self.ml / "model", output))
        except Exception:
            text = "[smglm-local] could not end the MLflow run:\n" + traceback.format_exc()
            self.log(text)
            print(text, file=sys.stderr, flush=True)  # runner.log


def _exit_text(code: int) -> str:
    """How training ended, in words: ``training was killed by SIGKILL (signal 9)``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        cause = "out of memory, or another process" if -code == signal.SIGKILL else "not smglm"
        return f"training was killed by {name} (signal {-code}; {cause})"
    return f"training exited with status {code}"


def _default_launchers(warm_home: str | None, runner: str | None) -> list[Launcher]:
    if runner is not None:  # "docker" or "podman": run the job's image, not the package
        return [ContainerLauncher(runner)]
    if warm_home is not None:
        return [WarmLauncher(warm_home), ColdLauncher()]
    return [ColdLauncher()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smglm.launch.supervisor")
    parser.add_argument("job_dir")
    parser.add_argument("--grace", type=float, default=120.0)
    parser.add_argument("--warm", default=None, help="smglm home whose warm worker forks train")
    parser.add_argument("--runner", choices=["docker", "podman"], help="run the job's image")
    args = parser.parse_args(argv)
    # the job's files are this user's only; what libraries print reaches runner.log redacted
    os.umask(0o077)
    secrets = secret_values(os.environ)
    sys.stdout = RedactingStream(sys.stdout, secrets)
    sys.stderr = RedactingStream(sys.stderr, secrets)
    folder = Path(args.job_dir)
    supervisor = Supervisor(folder, args.grace, warm_home=args.warm, runner=args.runner)
    try:
        return supervisor.run()
    except Exception as exc:  # last resort: never leave a job InProgress forever
        traceback.print_exc()
        supervisor.kill_training()
        reason = no_space_reason(exc) or (
            f"InternalServerError: local supervisor crashed ({type(exc).__name__}: {exc}); "
            "see runner.log"
        )
        try:
            state = read_json(folder / "state.json")
        except (OSError, ValueError):
            state = {"TrainingJobName": supervisor.spec.name, "Tags": supervisor.spec.tags}
        state.update(TrainingJobStatus="Failed", FailureReason=reason[:1024])
        supervisor.finalize_tracking(state)
        with contextlib.suppress(OSError):
            write_json_atomic(folder / "state.json", state)
        return 1


if __name__ == "__main__":
    sys.exit(main())
