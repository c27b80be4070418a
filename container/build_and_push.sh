#!/usr/bin/env bash
# Build smglm's SageMaker image and push it to Amazon ECR; prints the image URI on stdout.
#
#   container/build_and_push.sh                  build, create the ECR repository if missing,
#                                                log in, tag and push
#   container/build_and_push.sh --local-only     build only (no AWS); prints the local image name
#   container/build_and_push.sh --dry-run ...    print the commands, run none of them
#
# `smglm image build` and `smglm image push` run this script (build is --local-only).
#
# Options:
#   --engine ENGINE     docker, podman or buildah (default: docker when its engine answers,
#                       else buildah, else podman; buildah's images are pushed with podman)
#   --offline           put every runtime dependency's wheel into the build context (downloaded
#                       here with pip, for linux/amd64 and Python 3.11) and install with
#                       --no-index: for builders that cannot reach PyPI themselves
#   --extras LIST       smglm's extras to install, comma-separated (default serve)
#   --base-image IMAGE  the FROM image (default python:3.11-slim; must have Python 3.11)
#   --no-pull           never pull the base image (a locally made base, as in CI)
#   --repository NAME   the ECR repository (default smglm)
#   --tag TAG           the image tag (default: the package version, src/smglm/_version.py)
#   --region REGION     the AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the aws config)
#   --account ID        the AWS account (default: from sts get-caller-identity)
#
# Environment: PYTHON, the Python that builds the wheels (default .venv/bin/python, else python3).
# Progress goes to stderr; only the image reference goes to stdout.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; }
die() {
  echo "build_and_push: $*" >&2
  exit 2
}

engine="" offline=0 extras=serve base_image="python:3.11-slim" no_pull=0 repository=smglm tag=""
region="" account="" local_only=0 dry_run=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --engine) engine="${2:?--engine needs docker, podman or buildah}"; shift 2 ;;
    --offline) offline=1; shift ;;
    --extras) extras="${2?--extras needs a list such as serve,tracking}"; shift 2 ;;
    --base-image) base_image="${2:?--base-image needs an image}"; shift 2 ;;
    --no-pull) no_pull=1; shift ;;
    --repository) repository="${2:?--repository needs a name}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a tag}"; shift 2 ;;
    --region) region="${2:?--region needs a region}"; shift 2 ;;
    --account) account="${2:?--account needs an account id}"; shift 2 ;;
    --local-only) local_only=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# Run a command, or only print it with --dry-run (as `+ command` on the script's stdout, fd 3,
# whatever the command's own output is redirected to).
exec 3>&1
run() {
  if [ "$dry_run" = 1 ]; then
    { printf '+'; printf ' %q' "$@"; printf '\n'; } >&3
  else
    printf '+'  >&2; printf ' %q' "$@" >&2; printf '\n' >&2
    "$@"
  fi
}

if [ -z "$engine" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v buildah >/dev/null 2>&1; then
    engine=buildah
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  elif [ "$dry_run" = 1 ]; then
    engine=docker
  else
    die "no container engine: install Docker (with a running engine), podman or buildah"
  fi
fi
case "$engine" in
  docker | podman | buildah) ;;
  *) die "--engine must be docker, podman or buildah; got '$engine'" ;;
esac
# buildah builds; podman (same image store) logs in, tags and pushes its images.
pusher="$engine"
[ "$engine" = buildah ] && pusher=podman

python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
if [ -z "$tag" ]; then
  tag="$(sed -n 's/^__version__ *= *"\(.*\)"/\1/p' "$root/src/smglm/_version.py" | head -n 1)"
  [ -n "$tag" ] || die "cannot read __version__ from src/smglm/_version.py; give --tag"
fi
local_image="smglm:$tag"
[ "$engine" = docker ] || local_image="localhost/$local_image"

# 1. The build context, in the git-ignored cache: Dockerfile, constraints.txt, requirements.txt
# (smglm's runtime requirements with its extras, read from the wheel), smglm/ (the smglm wheel) and
# wheelhouse/ (empty, or with --offline every dependency's wheel).
context="${SMGLM_CONTAINER_CACHE:-$root/.cache/container}/context"
build_context() {
  local wheel minor platforms=() wheels="$context/wheelhouse"
  # The wheelhouse is kept from the last build while the requirements and pins are the same.
  rm -rf "$context/smglm" "$context/Dockerfile"
  mkdir -p "$context/smglm"
  cp "$root/container/Dockerfile" "$context/"
  # The wheel is built from a clean copy of the sources: setuptools' build/ folder in the tree
  # would carry deleted modules into it. Pure Python: built without build isolation when this
  # Python has setuptools (seconds faster).
  rm -rf "$context/source"
  mkdir -p "$context/source"
  local files=(pyproject.toml src) file
  for file in "$root"/README* "$root"/LICENSE*; do
    [ -e "$file" ] && files+=("$(basename "$file")")
  done
  (cd "$root" && tar --exclude=__pycache__ --exclude='*.egg-info' -cf - "${files[@]}") |
    tar -C "$context/source" -xf -
  # SOURCE_DATE_EPOCH: the same sources make the same wheel, so the image layer is reused.
  export SOURCE_DATE_EPOCH=315532800
  "$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$context/smglm" \
    "$context/source" >&2 2>/dev/null ||
    "$python" -m pip wheel --quiet --no-deps --wheel-dir "$context/smglm" "$context/source" >&2
  rm -rf "$context/source"
  wheel="$(ls "$context"/smglm/smglm-*.whl)"
  "$python" - "$wheel" "$extras" >"$context/requirements.txt.new" <<'PY'
"""Print the requirements of a wheel, with the given extras (comma-separated), one a line."""
import email
import sys
import zipfile

wheel, extras = sys.argv[1], [e for e in sys.argv[2].split(",") if e]
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = email.message_from_bytes(archive.read(name))
for line in metadata.get_all("Requires-Dist") or []:
    requirement, _, marker = (part.strip() for part in line.partition(";"))
    if requirement.split("[")[0].strip().lower() == "smglm":
        continue
    try:
        from packaging.markers import Marker
    except ImportError:  # without packaging: plain `extra == "x"` markers only
        wanted = not marker or marker.replace("'", '"').replace(" ", "") in {
            f'extra=="{e}"' for e in extras
        }
    else:
        wanted = not marker or any(Marker(marker).evaluate({"extra": e}) for e in extras or [""])
    if wanted:
        print(requirement)
PY
  if [ "$offline" != "$(cat "$wheels/OFFLINE" 2>/dev/null)" ] ||
    ! cmp -s "$root/constraints.txt" "$context/constraints.txt" ||
    ! cmp -s "$context/requirements.txt.new" "$context/requirements.txt"; then
    rm -rf "$wheels"
  fi
  mv -f "$context/requirements.txt.new" "$context/requirements.txt"
  cp "$root/constraints.txt" "$context/constraints.txt"
  if [ ! -d "$wheels" ] && [ "$offline" = 1 ]; then
    rm -rf "$wheels.new"
    # For the image's platform, not this machine's: bookworm (glibc 2.36), CPython 3.11, amd64.
    for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
    platforms+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64
      --platform manylinux1_x86_64)
    "$python" -m pip download --quiet --only-binary=:all: --python-version 3.11 \
      --implementation cp --abi cp311 "${platforms[@]}" --constraint "$root/constraints.txt" \
      --dest "$wheels.new" --requirement "$context/requirements.txt" >&2
    mv "$wheels.new" "$wheels"
  fi
  mkdir -p "$wheels"
  echo "$offline" >"$wheels/OFFLINE"
}
if [ "$dry_run" = 1 ]; then
  echo "+ # build context $context: Dockerfile, constraints.txt, requirements.txt, smglm/, wheelhouse/"
else
  echo "[build_and_push] making the build context in $context" >&2
  build_context
fi

# 2. Build. Always linux/amd64 (SageMaker training has no arm64 instances) and a Docker v2
# schema 2 manifest (SageMaker rejects OCI manifests).
build_args=(--build-arg "BASE_IMAGE=$base_image" --build-arg "OFFLINE=$offline"
  --build-arg "EXTRAS=$extras"
  --tag "$local_image" --file "$context/Dockerfile")
case "$engine" in
  docker)
    extra=(--platform linux/amd64)
    # buildx (the default builder) would add provenance attestations, which make an OCI index.
    if [ "$dry_run" = 1 ] || docker buildx version >/dev/null 2>&1; then
      extra+=(--provenance=false --sbom=false)
    fi
    run docker build "${extra[@]}" "${build_args[@]}" "$context" >&2
    ;;
  podman | buildah)
    extra=(--format docker --platform linux/amd64 --layers)
    [ "$no_pull" = 1 ] && extra+=(--pull=never)
    [ "$engine" = buildah ] && cmd=(buildah bud) || cmd=(podman build)
    run "${cmd[@]}" "${extra[@]}" "${build_args[@]}" "$context" >&2
    ;;
esac
if [ "$local_only" = 1 ]; then
  echo "$local_image"
  exit 0
fi

# 3. ECR: the registry of this account and region; the repository, created if missing.
have_aws_cli=0
command -v aws >/dev/null 2>&1 && have_aws_cli=1
boto3() { "$python" -c "import boto3, sys; $1" "${@:2}"; }
if [ -z "$region" ]; then
  region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
  if [ -z "$region" ] && [ "$have_aws_cli" = 1 ]; then
    region="$(aws configure get region || true)"
  fi
  if [ -z "$region" ] && [ "$dry_run" = 1 ]; then region=REGION; fi
  [ -n "$region" ] || die "no AWS region: give --region or set AWS_REGION"
fi
if [ -z "$account" ]; then
  if [ "$dry_run" = 1 ]; then
    account=ACCOUNT
    echo "+ aws sts get-caller-identity --query Account --output text"
  elif [ "$have_aws_cli" = 1 ]; then
    account="$(aws sts get-caller-identity --query Account --output text)"
  else
    account="$(boto3 'print(boto3.client("sts").get_caller_identity()["Account"])')"
  fi
fi
registry="$account.dkr.ecr.$region.amazonaws.com"
uri="$registry/$repository:$tag"

if [ "$dry_run" = 1 ]; then
  echo "+ aws ecr describe-repositories --region $region --repository-names $repository ||"
  echo "+ aws ecr create-repository --region $region --repository-name $repository"
elif [ "$have_aws_cli" = 1 ]; then
  if ! aws ecr describe-repositories --region "$region" --repository-names "$repository" \
    >/dev/null 2>&1; then
    run aws ecr create-repository --region "$region" --repository-name "$repository" >/dev/null
  fi
else
  echo "[build_and_push] aws cli not found: using boto3 for ECR" >&2
  boto3 '
ecr = boto3.client("ecr", region_name=sys.argv[1])
try:
    ecr.describe_repositories(repositoryNames=[sys.argv[2]])
except ecr.exceptions.RepositoryNotFoundException:
    ecr.create_repository(repositoryName=sys.argv[2])
    print("created ECR repository", sys.argv[2], file=sys.stderr)
' "$region" "$repository"
fi

# 4. Log in, tag, push.
if [ "$dry_run" = 1 ]; then
  echo "+ aws ecr get-login-password --region $region | $pusher login --username AWS --password-stdin $registry"
elif [ "$have_aws_cli" = 1 ]; then
  aws ecr get-login-password --region "$region" |
    "$pusher" login --username AWS --password-stdin "$registry" >&2
else
  boto3 '
import base64
token = boto3.client("ecr", region_name=sys.argv[1]).get_authorization_token()
print(base64.b64decode(token["authorizationData"][0]["authorizationToken"]).decode().split(":")[1])
' "$region" | "$pusher" login --username AWS --password-stdin "$registry" >&2
fi
run "$pusher" tag "$local_image" "$uri"
if [ "$pusher" = docker ]; then
  run docker push "$uri" >&2
else
  # podman's default for a push is OCI; SageMaker needs Docker v2 schema 2.
  run podman push --format v2s2 "$uri" >&2
fi
echo "$uri"
