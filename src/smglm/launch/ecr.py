"""The ECR image check before a SageMaker launch: parse an ECR image URI, find the image's digest.

:mod:`smglm.launch.aws` offers both functions too. boto3 is imported only when used.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from smglm.errors import ConfigError, Issue

__all__ = ["check_image", "parse_ecr_uri"]

_ECR_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<repo>[a-z0-9._/-]+?)(?::(?P<tag>[A-Za-z0-9_.-]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def parse_ecr_uri(uri: str) -> dict[str, str | None] | None:
    """``account``, ``region``, ``repo``, ``tag``, ``digest`` of an ECR image URI, else None."""
    match = _ECR_RE.match(uri)
    return match.groupdict() if match else None


def check_image(uri: str, *, session: Any | None = None, region: str | None = None) -> str | None:
    """Check that the image exists in ECR before a launch; return its digest.

    Parameters
    ----------
    uri
        The training image, ``<account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag|@digest]``.
    session
        The boto3 session (default: a new one).
    region
        The job's region: SageMaker pulls only from ECR in the job's region.

    Returns
    -------
    str or None
        The image digest; None for a non-ECR URI, which is accepted with a warning.

    Raises
    ------
    ConfigError
        Naming ``image_uri`` when the repository or the tag does not exist, or the image is in
        another region; the message says how to build and push it.
    """
    # Looked up in smglm.launch.aws at call time: it imports this module (to offer check_image),
    # so importing it here at the top would be a cycle; patches of its names apply here too.
    from smglm.launch.aws import AwsError, aws_call, boto3_session

    parts = parse_ecr_uri(uri)
    if parts is None:
        warnings.warn(
            f"image_uri {uri!r} is not an Amazon ECR image and is not checked: SageMaker "
            "training pulls from ECR in the job's region (or from a private registry through "
            "a VPC)",
            UserWarning,
            stacklevel=2,
        )
        return None
    image_region, repo = str(parts["region"]), str(parts["repo"])
    options = f"--repository {repo}" + (f" --tag {parts['tag']}" if parts["tag"] else "")
    push = (
        f"build and push it first: `smglm image push --region {region or image_region} "
        f"{options}` (or container/build_and_push.sh with the same options), then pass the URI "
        "it prints"
    )
    if region and region != image_region:
        raise ConfigError(
            [
                Issue(
                    "image_uri",
                    f"{uri!r} is in ECR in {image_region}, but the job runs in {region}: "
                    f"SageMaker pulls images only from the job's region; {push}",
                    uri,
                )
            ]
        )
    image_id = (
        {"imageDigest": parts["digest"]}
        if parts["digest"]
        else {"imageTag": parts["tag"] or "latest"}
    )
    ecr = boto3_session(session).client("ecr", region_name=image_region)
    try:
        with aws_call(f"ECR DescribeImages {repo}"):
            resp = ecr.describe_images(
                registryId=parts["account"], repositoryName=repo, imageIds=[image_id]
            )
    except AwsError as exc:
        if exc.code == "RepositoryNotFoundException":
            account = parts["account"]
            what = f"there is no ECR repository {repo!r} in account {account} ({image_region})"
        elif exc.code == "ImageNotFoundException":
            what = f"ECR repository {repo!r} has no image {next(iter(image_id.values()))!r}"
        else:
            raise
        raise ConfigError([Issue("image_uri", f"{uri!r}: {what}; {push}", uri)]) from exc
    details = resp.get("imageDetails") or [{}]
    digest = details[0].get("imageDigest")
    return str(digest) if digest else None
