"""What the commands share: a backend from the settings, a job or data from a name or a path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.errors import ConfigError, DataError, Issue, did_you_mean

if TYPE_CHECKING:
    from smglm.launch import Backend, Job
    from smglm.notebook.settings import Settings

__all__ = ["backend_for", "dataframe_names", "resolve_data", "resolve_job", "strip_quotes"]


def strip_quotes(text: str) -> str:
    """``text`` without one pair of surrounding quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def backend_for(name: str | None = None, settings: Settings | None = None) -> Backend:
    """The backend ``name`` (default: the ``backend`` setting, else local), made with the
    settings it takes as options (e.g. SageMaker's ``region``)."""
    from smglm.launch.backend import DEFAULT_BACKEND, backend_from_config
    from smglm.notebook.settings import load_settings

    settings = settings or load_settings()
    chosen = name or settings.get("backend") or DEFAULT_BACKEND
    return backend_from_config(chosen, settings.job_fields())


def _is_job(obj: Any) -> bool:
    from smglm.launch import Job

    return isinstance(obj, Job)


def resolve_job(ref: str, user_ns: dict[str, Any] | None = None, backend: str | None = None) -> Job:
    """The job ``ref`` names: a variable holding a Job, or a training job's name."""
    from smglm.launch import Job

    ref = strip_quotes(ref)
    if user_ns is not None and ref.isidentifier() and _is_job(user_ns.get(ref)):
        job: Job = user_ns[ref]
        return job
    if user_ns is not None and ref.isidentifier() and ref in user_ns:
        value = user_ns[ref]
        if isinstance(value, str):
            ref = value
    return Job.attach(ref, backend_for(backend))


def dataframe_names(user_ns: dict[str, Any]) -> list[str]:
    """The names of the DataFrames in the user's namespace (not the private ``_x`` ones)."""
    import sys

    pd = sys.modules.get("pandas")
    if pd is None:
        return []
    return sorted(
        k for k, v in user_ns.items() if not k.startswith("_") and isinstance(v, pd.DataFrame)
    )


def resolve_data(ref: str, user_ns: dict[str, Any] | None, option: str = "--data") -> Any:
    """What ``--data`` names: a DataFrame variable, an ``s3://``/``file://`` URI, or a path."""
    ref = strip_quotes(ref)
    field = option.lstrip("-").replace("-", "_")
    if not ref:
        raise ConfigError([Issue(field, f"{option} is empty; give a DataFrame name or a path")])
    if ref.startswith(("s3://", "file://")):
        return ref
    if user_ns is not None and ref.isidentifier() and ref in user_ns:
        value = user_ns[ref]
        if isinstance(value, (str, Path)):
            return resolve_data(str(value), None, option)
        if hasattr(value, "columns") and hasattr(value, "to_parquet"):
            return value
        raise DataError(
            [
                Issue(
                    field,
                    f"{option} {ref!r} is a {type(value).__name__}; give a pandas DataFrame, "
                    "a path or an s3:// URI",
                    ref,
                )
            ]
        )
    path = Path(ref).expanduser()
    if path.exists():
        return str(path.absolute())
    names = dataframe_names(user_ns or {})
    hint = did_you_mean(ref, names) if names else ""
    known = f" DataFrames in the notebook: {names}." if names else ""
    raise DataError(
        [
            Issue(
                field,
                f"{option} {ref!r} is neither a variable of the notebook nor an existing file "
                f"or folder.{known}{hint}",
                ref,
            )
        ]
    )


def local_frame(ref: str, user_ns: dict[str, Any]) -> tuple[Any, str | None]:
    """The DataFrame ``ref`` names (a variable or a local path), or None and why not (the
    form lists the columns of local data only)."""
    from smglm.errors import SmglmError
    from smglm.glm.io import read_table

    if not ref:
        return None, None
    try:
        data = resolve_data(ref, user_ns)
        if isinstance(data, str) and data.startswith(("s3://", "file://")):
            return None, (
                f"data: the form lists the columns of local data; for {data!r} write a "
                "%%sm_train cell"
            )
        return (data if not isinstance(data, str) else read_table(data)), None
    except (SmglmError, OSError, ValueError) as exc:
        return None, str(exc)


def current_shell() -> Any:
    """The running IPython shell, or None (no IPython, or not in one)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def current_user_ns() -> dict[str, Any]:
    """The running shell's user namespace, or an empty one."""
    shell = current_shell()
    return shell.user_ns if shell is not None else {}
