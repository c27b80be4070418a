"""Build smglm's SageMaker image and push it to Amazon ECR: ``smglm image build|push``.

Both commands drive ``container/build_and_push.sh`` of smglm's source tree (the one this smglm
is installed from in editable mode, or the current folder, or ``--source``), which holds the
Dockerfile and builds smglm's wheel into the image. See ``container/README.md``.

- ``smglm image build``: build ``smglm:<version>`` for linux/amd64 with Docker, podman or
  buildah; prints the local image name.
- ``smglm image push``: build, create the ECR repository if missing, log in, tag and push;
  prints the image URI, the value of ``JobConfig.image_uri`` for the sagemaker backend.
- ``--dry-run`` on either prints the commands (``+ docker build ...``, ``+ aws ecr
  get-login-password ... | docker login ...``, ``+ docker push ...``) and runs none of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from smglm.errors import ConfigError, Issue

__all__ = [
    "BUILDERS",
    "SCRIPT",
    "ImageOptions",
    "find_builder",
    "find_script",
    "image_command",
    "run_image_command",
]

#: The container tools that can build the image, in the order they are looked for.
BUILDERS = ("docker", "buildah", "podman")
#: The build script, relative to smglm's source tree.
SCRIPT = Path("container") / "build_and_push.sh"


@dataclass(frozen=True)
class ImageOptions:
    """What to build and where to push it; ``None`` leaves the choice to the build script.

    Attributes
    ----------
    builder
        ``docker``, ``buildah`` or ``podman`` (default: :func:`find_builder`).
    tag
        The image tag (default: smglm's version).
    repository
        The ECR repository (default ``smglm``); created by ``push`` when missing.
    region
        The AWS region to push to (default: ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the AWS
        config); it must be the region the training jobs run in.
    account
        The AWS account (default: the caller's, from STS).
    extras
        smglm's extras installed in the image, comma-separated (default ``serve``).
    base_image
        The ``FROM`` image (default ``python:3.11-slim``; it must have Python 3.11).
    offline
        Download every dependency's wheel here and install them in the build with
        ``--no-index`` (for builders that cannot reach PyPI).
    no_pull
        Never pull the base image (a locally made base).
    source
        smglm's source tree (default: :func:`find_script`'s search).
    """

    builder: str | None = None
    tag: str | None = None
    repository: str | None = None
    region: str | None = None
    account: str | None = None
    extras: str | None = None
    base_image: str | None = None
    offline: bool = False
    no_pull: bool = False
    source: Path | None = None


def _docker_answers(docker: str) -> bool:
    try:
        proc = subprocess.run(
            [docker, "info"], capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def find_builder(path: str | None = None) -> str:
    """The container tool to build with: Docker when its engine answers, else buildah, else
    podman (buildah's images are pushed with podman), looked up on ``path`` (default ``PATH``).

    Raises
    ------
    ConfigError
        Naming ``--builder`` when none of them is installed.
    """
    docker = shutil.which("docker", path=path)
    if docker and _docker_answers(docker):
        return "docker"
    for builder in BUILDERS[1:]:
        if shutil.which(builder, path=path):
            return builder
    found = " (docker is installed, but `docker info` gets no answer from its engine)"
    raise ConfigError(
        [
            Issue(
                "--builder",
                "no container tool found on PATH"
                + (found if docker else "")
                + f": building smglm's image needs one of {', '.join(BUILDERS)}; install Docker "
                "(and start its engine), podman or buildah, or give --builder",
            )
        ]
    )


def _source_candidates() -> list[Path]:
    from smglm import _version

    # an editable install or a checkout on sys.path: SOURCE/src/smglm/_version.py
    installed = Path(_version.__file__).resolve().parents[2]
    return list(dict.fromkeys([installed, Path.cwd().resolve()]))


def find_script(source: Path | None = None) -> Path:
    """``container/build_and_push.sh`` of ``source``, or of the source tree smglm runs from,
    or of the current folder.

    Raises
    ------
    ConfigError
        Naming ``--source`` when none of them has the script (smglm installed from a wheel and
        run outside a checkout).
    """
    candidates = [Path(source).expanduser().resolve()] if source else _source_candidates()
    for folder in candidates:
        script = folder / SCRIPT
        if script.is_file():
            return script
    where = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        [
            Issue(
                "--source",
                f"no {SCRIPT} in {where}: smglm's image is built from smglm's source tree "
                "(its Dockerfile and build script); run this in a checkout of smglm or give "
                "--source PATH_TO_THE_CHECKOUT",
                str(source) if source else None,
            )
        ]
    )


def image_command(
    options: ImageOptions, *, push: bool, dry_run: bool = False, path: str | None = None
) -> list[str]:
    """The ``build_and_push.sh`` command line for ``options``: build only, or build and push.

    Without ``options.builder`` the tool is found with :func:`find_builder`; a dry run falls
    back to ``docker`` when there is none (it runs nothing).

    Raises
    ------
    ConfigError
        Naming the option at fault: an unknown ``--builder``, no tool, no source tree.
    """
    engine = options.builder
    if engine is not None and engine not in BUILDERS:
        raise ConfigError(
            [Issue("--builder", f"must be one of {', '.join(BUILDERS)}; got {engine!r}", engine)]
        )
    if engine is None:
        try:
            engine = find_builder(path)
        except ConfigError:
            if not dry_run:
                raise
            engine = "docker"
    command = ["bash", str(find_script(options.source)), "--engine", engine]
    values = {
        "--tag": options.tag,
        "--repository": options.repository,
        "--extras": options.extras,
        "--base-image": options.base_image,
    }
    if push:
        values.update({"--region": options.region, "--account": options.account})
    for flag, value in values.items():
        if value is not None:
            command += [flag, value]
    command += [
        flag
        for flag, on in (
            ("--offline", options.offline),
            ("--no-pull", options.no_pull),
            ("--local-only", not push),
            ("--dry-run", dry_run),
        )
        if on
    ]
    return command


def run_image_command(
    command: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a :func:`image_command`: progress goes to stderr as it comes, stdout is returned
    (the dry run's commands, then the image name or URI on its last line).

    The build script's wheels are made with this interpreter unless ``PYTHON`` is set.
    """
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHON", sys.executable)
    return subprocess.run(
        list(command), env=environment, stdout=subprocess.PIPE, text=True, check=False
    )
