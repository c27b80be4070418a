"""Run smglm's image through the SageMaker Python SDK v2's local mode; print what came back.

Run by ``tests/test_sdk_local_mode.py`` in a virtualenv that has SDK v2 (not in smglm's own
environment: smglm never depends on the SDK), with ``DOCKER_HOST`` pointing at podman's
Docker-compatible API. The SDK writes a compose file and runs ``docker-compose`` for each step,
as it does for any user's container:

1. ``Estimator(image_uri=..., instance_type="local").fit(...)`` with the ``train`` and
   ``config`` channels (``file://`` inputs) and hyperparameter overrides, which the SDK's
   generic Estimator sends as ``str(value)``;
2. ``deploy(1, "local")`` and ``predict`` of a DataFrame as CSV, then ``delete_endpoint()``
   and ``delete_model()``;
3. ``transformer(...).transform(..., logs=False)``: a batch transform of CSV files;
4. a ``fit`` whose config names a missing column, for the failure it leaves in ``output.tar.gz``.

Usage: ``python sdk_local_mode_script.py SPEC.json``; SPEC names the image, the folders and the
ports. The last line of stdout is ``SMGLM-RESULT <json>``: the model's URI, the request the SDK
made, the predictions and the transform's output files, for the test to compare with
``smglm.load_model(...).predict``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pandas as pd
from sagemaker.deserializers import CSVDeserializer
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.local import LocalSession
from sagemaker.serializers import CSVSerializer

MARKER = "SMGLM-RESULT "


def answers(port: int) -> bool:
    """Whether something answers ``/ping`` on the port (the endpoint is up)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/ping", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    timings: dict[str, float] = {}
    session = LocalSession(boto_session=boto3.Session(region_name=spec["region"]))
    # The SDK's local-mode settings (otherwise read from ~/.sagemaker/config.yaml): the host
    # port of the serving container and the folder of the compose files and /opt/ml trees.
    session.config = {
        "local": {
            "serving_port": spec["serving_port"],
            "container_root": spec["container_root"],
        }
    }
    estimator = Estimator(
        image_uri=spec["image"],
        role=spec["role"],
        instance_count=1,
        instance_type="local",
        output_path="file://" + spec["output"],
        base_job_name="smglm-sdk-local",
        hyperparameters=spec["hyperparameters"],
        sagemaker_session=session,
    )
    inputs = {
        "train": TrainingInput("file://" + spec["train"], content_type="text/csv"),
        "config": TrainingInput("file://" + spec["config"]),
    }
    # The request as the SDK sends it (hyperparameters as str(value)); local mode keeps no copy.
    client = session.sagemaker_client
    create_training_job = client.create_training_job
    requests: list[dict] = []

    def recording(**request):
        requests.append(copy.deepcopy(request))
        return create_training_job(**request)

    client.create_training_job = recording
    start = time.monotonic()
    estimator.fit(inputs)
    timings["fit"] = time.monotonic() - start
    job = session.sagemaker_client.describe_training_job(
        TrainingJobName=estimator.latest_training_job.name
    )

    rows = pd.read_csv(spec["predict"])
    start = time.monotonic()
    # wait=False: local mode's create_endpoint returns once the container answers /ping; the
    # SDK's wait would only sleep its 30 s poll interval before describing the endpoint.
    predictor = estimator.deploy(
        1, "local", serializer=CSVSerializer(), deserializer=CSVDeserializer(), wait=False
    )
    try:
        timings["deploy"] = time.monotonic() - start
        endpoint_up = answers(spec["serving_port"])
        predicted = predictor.predict(rows)
    finally:  # the model first: deleting the endpoint forgets its config, which names the model
        predictor.delete_model()
        predictor.delete_endpoint()
    timings["deploy_predict_delete"] = time.monotonic() - start
    endpoint_down = not answers(spec["serving_port"])

    # Its own port: a serving container the delete left behind would not answer for it.
    session.config = {
        "local": {
            "serving_port": spec["transform_port"],
            "container_root": spec["container_root"],
        }
    }
    start = time.monotonic()
    transformer = estimator.transformer(
        1,
        "local",
        strategy="MultiRecord",
        assemble_with="Line",
        accept="text/csv",
        output_path="file://" + spec["transform_output"],
    )
    transformer.transform(
        "file://" + spec["transform_input"], content_type="text/csv", split_type="Line", logs=False
    )
    timings["transform"] = time.monotonic() - start
    out = Path(spec["transform_output"])
    outputs = {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*.out"))}

    # A job that fails (its config names a column the data lacks). Whether fit() raises depends
    # on compose passing the container's exit code on, which over podman it often does not; the
    # failure file in output.tar.gz is what the test checks.
    failing = Estimator(
        image_uri=spec["image"],
        role=spec["role"],
        instance_count=1,
        instance_type="local",
        output_path="file://" + spec["failing_output"],
        base_job_name="smglm-sdk-local-failing",
        sagemaker_session=session,
    )
    start = time.monotonic()
    try:
        failing.fit(
            {
                "train": TrainingInput("file://" + spec["train"], content_type="text/csv"),
                "config": TrainingInput("file://" + spec["failing_config"]),
            }
        )
        failing_fit = None
    except Exception as exc:  # the SDK's RuntimeError when compose reports the exit code
        failing_fit = f"{type(exc).__name__}: {exc}"
    timings["failing_fit"] = time.monotonic() - start

    result = {
        "sdk_version": __import__("sagemaker").__version__,
        "model_data": estimator.model_data,
        "job": {
            "status": job["TrainingJobStatus"],
            "hyperparameters": requests[0]["HyperParameters"],
            "channels": [c["ChannelName"] for c in requests[0]["InputDataConfig"]],
            "image": requests[0]["AlgorithmSpecification"]["TrainingImage"],
        },
        "endpoint_up": endpoint_up,
        "predictions": predicted,
        "endpoint_down": endpoint_down,
        "transform_outputs": outputs,
        "failing_fit_raised": failing_fit,
        "timings": timings,
    }
    print(MARKER + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        # Exit now: the thread that follows a serving container's docker-compose would keep
        # the interpreter alive. The test removes the containers.
        os._exit(1)
