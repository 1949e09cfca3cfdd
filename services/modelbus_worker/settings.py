"""Settings of the container side of the worker (env prefix ``MODELBUS_WORKER_``) and of
the package indexes its wheels come from (env prefix ``MODELBUS_PIP_``).

Read by the images and the pool alike, so it sits below both, beside the worker's ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelbus_contract.interpreters import InterpreterSettings
from modelbus_worker.quantities import parse_budget, parse_duration


class PipIndexSettings(BaseSettings):
    """Where ``pip download`` looks for the wheels of dependency sets (unset: pip's own
    configuration). URLs may carry credentials (``https://user:token@host/simple``): they
    reach pip through its environment, never its command line, a log line or an image."""

    model_config = SettingsConfigDict(env_prefix="MODELBUS_PIP_", extra="ignore")

    index_url: SecretStr | None = Field(
        default=None, description="Base URL of the package index (pip's --index-url)."
    )
    extra_index_url: SecretStr | None = Field(
        default=None, description="More index URLs, space-separated (pip's --extra-index-url)."
    )
    find_links: SecretStr | None = Field(
        default=None, description="URLs or paths of wheel listings, space-separated "
        "(pip's --find-links).",
    )
    trusted_host: str | None = Field(
        default=None, description="Hosts served over plain HTTP or with an untrusted "
        "certificate, space-separated (pip's --trusted-host).",
    )


class ContainerSettings(InterpreterSettings):
    """How runtime images are built and how model containers are run and kept warm
    (the interpreters models may run under: see ``InterpreterSettings``)."""

    model_config = SettingsConfigDict(env_prefix="MODELBUS_WORKER_", extra="ignore")

    # Images
    base_image: str | None = Field(
        default=None,
        description="Use this image (present locally or pullable, e.g. python:3.11-slim) as "
        "the base instead of building the offline Debian one.",
    )
    debian_mirror: str | None = Field(
        default=None, description="Mirror for debootstrap; default: read from apt's sources."
    )
    cache_dir: Path = Path("~/.cache/modelbus")
    container_python: str = Field(
        default="3.11", description="Python of the image named by `base_image`."
    )
    container_glibc: str = Field(
        default="2.36", description="glibc of `base_image` and of template images."
    )
    container_arch: str = "x86_64"
    container_installer: Literal["uv", "pip"] = Field(
        default="uv",
        description="What resolves and installs a dependency set's wheels: `uv` installs them "
        "on the host for the container's Python and platform (the image build only unpacks "
        "and compiles them, offline); `pip` runs `pip download` on the host and `pip install "
        "--no-index` in the build. A set uv cannot install is tried with pip, whose output "
        "names the cause.",
    )
    pip_timeout_s: float = Field(default=900.0, gt=0)
    pip: PipIndexSettings = Field(default_factory=PipIndexSettings)
    dependency_retry_initial_s: float = Field(
        default=60.0, gt=0, description="A dependency set whose wheels cannot be resolved is "
        "not resolved again for this long; the wait doubles with each failure.",
    )
    dependency_retry_max_s: float = Field(default=3600.0, gt=0)

    # Disk
    image_max_idle: float = Field(
        default=7 * 86400.0, gt=0,
        description="`modelbus images prune` removes what was unused this long (30m, 12h, 7d).",
    )
    image_budget: int | None = Field(
        default=None,
        description="Bytes (500m, 20g) our images may take; after a build the least recently "
        "used unused ones are removed beyond it. Unset/0: no budget.",
    )

    # Containers
    max_containers: int = Field(default=4, ge=1)
    idle_timeout_s: float = Field(default=600.0, gt=0)
    reap_interval_s: float = Field(default=5.0, gt=0)
    memory_limit: str = "2g"
    cpus: float = Field(default=1.0, gt=0)
    pids_limit: int = Field(default=256, ge=16)
    tmpfs_size: str = "256m"
    start_timeout_s: float = Field(default=180.0, gt=0)
    request_timeout_s: float = Field(default=60.0, gt=0)
    health_timeout_s: float = Field(default=2.0, gt=0)
    stop_timeout_s: int = Field(default=2, ge=0)

    # Standby runtimes: started containers of a recently used runtime image, libraries
    # imported, waiting to be handed a model (counted apart from ``max_containers``).
    standby_per_image: int = Field(
        default=1, ge=0, description="Standbys kept per runtime image once it was used; 0: off."
    )
    max_standby: int = Field(default=2, ge=0, description="Standbys kept in all.")

    @field_validator("cache_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("image_max_idle", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("image_budget", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_budget(value)
        return None if value == 0 else value

    @property
    def socket_root(self) -> Path:
        """Host directory holding one bind-mounted socket directory per container."""
        return self.cache_dir / "sock"

    @property
    def wheelhouse_root(self) -> Path:
        return self.cache_dir / "wheelhouse"

    @property
    def build_root(self) -> Path:
        return self.cache_dir / "build"

    @property
    def model_cache_root(self) -> Path:
        """Host directory holding the downloaded files of model versions."""
        return self.cache_dir / "models"
