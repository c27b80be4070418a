"""``smglm image build`` and ``smglm image push``, run as a user runs them (a subprocess), only
as dry runs: the commands they would run are checked, none is run (tests/test_container.py
builds the image for real)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from smglm._version import __version__
from smglm.cli import _parser
from smglm.errors import ConfigError

ACCOUNT, REGION = "123456789012", "eu-west-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


def _smglm(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "smglm", "image", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_image_help_lists_build_and_push():
    proc = _smglm("--help")
    assert proc.returncode == 0, proc.stderr
    assert "build" in proc.stdout and "push" in proc.stdout
    assert "container/build_and_push.sh" in proc.stdout.replace("\n", " ")
    push = _smglm("push", "--help")
    for option in ("--dry-run", "--builder", "--tag", "--repository", "--region", "--account"):
        assert option in push.stdout
    build = _smglm("build", "--help")
    assert "--dry-run" in build.stdout and "--region" not in build.stdout


def test_image_build_dry_run_prints_the_build_command_only():
    proc = _smglm("build", "--dry-run", "--builder", "buildah", "--tag", "dev")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "localhost/smglm:dev"
    build = next(line for line in lines if line.startswith("+ buildah bud "))
    assert "--format docker" in build and "--platform linux/amd64" in build
    assert "--tag localhost/smglm:dev" in build
    assert not any("ecr" in line or " push " in line for line in lines)


def test_image_push_dry_run_prints_build_login_tag_and_push():
    aws = ["--account", ACCOUNT, "--region", REGION, "--repository", "glms"]
    proc = _smglm("push", "--dry-run", "--builder", "docker", *aws)
    assert proc.returncode == 0, proc.stderr
    uri = f"{REGISTRY}/glms:{__version__}"
    lines = proc.stdout.splitlines()
    assert lines[-1] == uri
    build = next(line for line in lines if line.startswith("+ docker build "))
    assert "--provenance=false" in build and f"--tag smglm:{__version__}" in build
    assert f"+ aws ecr create-repository --region {REGION} --repository-name glms" in lines
    login = (
        f"+ aws ecr get-login-password --region {REGION} | docker login --username AWS "
        f"--password-stdin {REGISTRY}"
    )
    assert login in lines
    assert f"+ docker tag smglm:{__version__} {uri}" in lines
    assert f"+ docker push {uri}" in lines


def test_image_build_without_a_builder_says_which_to_install(tmp_path):
    proc = _smglm("build", path=str(tmp_path))  # an empty PATH: no docker, buildah, podman
    assert proc.returncode == 2
    assert "--builder: no container tool found on PATH" in proc.stderr
    assert "docker, buildah, podman" in proc.stderr
    assert proc.stdout == ""


def test_image_dry_run_without_an_engine_shows_dockers_commands(tmp_path):
    tools = tmp_path / "bin"  # the shell tools the script uses, and no container engine
    tools.mkdir()
    for tool in ("bash", "dirname", "sed", "head"):
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    proc = _smglm("build", "--dry-run", path=str(tools))
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("+ docker build ") for line in proc.stdout.splitlines())


def test_image_outside_a_source_tree_names_source(tmp_path):
    proc = _smglm("build", "--dry-run", "--builder", "podman", "--source", str(tmp_path))
    assert proc.returncode == 2
    assert "--source: no container/build_and_push.sh in" in proc.stderr


def test_image_engine_is_the_old_spelling_of_builder():
    proc = _smglm("build", "--dry-run", "--engine", "buildah", "--tag", "dev")
    assert proc.returncode == 0, proc.stderr
    assert "image --engine is deprecated: use --builder buildah" in proc.stderr
    assert any(line.startswith("+ buildah bud ") for line in proc.stdout.splitlines())


def _hint(message: str) -> list[str]:
    """The ``smglm image push ...`` command that an error message tells the user to run."""
    match = re.search(r"`(smglm image push[^`]*)`", message)
    assert match, message
    return shlex.split(match.group(1))


def test_ecr_error_hints_are_real_commands():
    from smglm.launch.ecr import check_image

    uri = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/glms:2.0"
    with pytest.raises(ConfigError) as info:
        check_image(uri, region=REGION)  # refused before any AWS call: another region
    command = _hint(str(info.value))
    assert command[:3] == ["smglm", "image", "push"]
    args = _parser().parse_args([*command[1:], "--dry-run"])
    pushed = (args.image_command, args.region, args.repository, args.tag)
    assert pushed == ("push", REGION, "glms", "2.0")


def test_sagemaker_backend_hint_without_image_is_a_real_command():
    pytest.importorskip("boto3")
    from smglm.config import JobConfig
    from smglm.launch.sagemaker import SageMakerBackend

    backend = SageMakerBackend(region=REGION)
    with pytest.raises(ConfigError) as info:
        backend.prepare_image(JobConfig(backend="sagemaker"))
    command = _hint(str(info.value))
    assert command == ["smglm", "image", "push", "--region", REGION]
    args = _parser().parse_args(command[1:])
    assert args.image_command == "push" and args.region == REGION
