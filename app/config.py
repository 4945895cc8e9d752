"""Settings: Kernel Gateway's options under their KG_* names (all but KG_SSL_VERSION, see README's
differences), plus fastkg's FASTKG_* options and Enterprise Gateway's EG_* multi-tenant ones.

This is the only module that reads the process environment for configuration. Precedence is
CLI flags (passed as init arguments) > environment > defaults, as in Kernel Gateway.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


class Personality(StrEnum):
    """The APIs a gateway can serve (KG_API)."""

    JUPYTER_WEBSOCKET = "jupyter-websocket"
    NOTEBOOK_HTTP = "notebook-http"
    SERVICES = "services"


class AdminMode(StrEnum):
    """Whether the admin page and its API are served (FASTKG_ADMIN)."""

    ON = "on"
    OFF = "off"
    AUTO = "auto"  # on with a token or on a loopback address, else off


class LogFormat(StrEnum):
    """How log records are written (FASTKG_LOG_FORMAT)."""

    PLAIN = "plain"
    JSON = "json"


class CellParser(StrEnum):
    """How notebook-http finds endpoints in a notebook (KG_CELL_PARSER)."""

    ANNOTATIONS = "kernel_gateway.notebook_http.cell.parser"
    SWAGGER = "kernel_gateway.notebook_http.swagger.parser"


_PERSONALITY_NAMES = {
    "jupyter-websocket": Personality.JUPYTER_WEBSOCKET,
    "kernel_gateway.jupyter_websocket": Personality.JUPYTER_WEBSOCKET,
    "notebook-http": Personality.NOTEBOOK_HTTP,
    "kernel_gateway.notebook_http": Personality.NOTEBOOK_HTTP,
    "services": Personality.SERVICES,
}

_BUILT_IN = {p.value for p in Personality}
_PLUGIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*([.-][A-Za-z_][A-Za-z0-9_]*)*")


def _is_plugin_name(name: str) -> bool:
    # KG's own modules are not plug-ins fastkg can load: an unknown kernel_gateway.* name is a typo
    return not name.startswith("kernel_gateway.") and _PLUGIN_NAME.fullmatch(name) is not None


_CELL_PARSER_NAMES = {
    "kernel_gateway.notebook_http.cell.parser": CellParser.ANNOTATIONS,
    "cell": CellParser.ANNOTATIONS,
    "kernel_gateway.notebook_http.swagger.parser": CellParser.SWAGGER,
    "swagger": CellParser.SWAGGER,
}


def _env(name: str, *more: str) -> Any:
    """Field that reads `name` (a KG_* or FASTKG_* variable) and accepts the field name as an argument."""
    return AliasChoices(name, *more)


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Gateway configuration. Construct with keyword arguments to override the environment."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True,
        populate_by_name=True,
        extra="ignore",
        case_sensitive=True,
    )

    ip: str = Field("127.0.0.1", validation_alias=_env("KG_IP", "ip"))
    port: int = Field(8888, ge=0, le=65535, validation_alias=_env("KG_PORT", "port"))
    port_retries: int = Field(50, ge=0, validation_alias=_env("KG_PORT_RETRIES", "port_retries"))
    base_url: str = Field("/", validation_alias=_env("KG_BASE_URL", "base_url"))
    auth_token: SecretStr | None = Field(None, validation_alias=_env("KG_AUTH_TOKEN", "auth_token"))

    allow_origin: str = Field("", validation_alias=_env("KG_ALLOW_ORIGIN", "allow_origin"))
    allow_credentials: str = Field("", validation_alias=_env("KG_ALLOW_CREDENTIALS", "allow_credentials"))
    allow_headers: str = Field("", validation_alias=_env("KG_ALLOW_HEADERS", "allow_headers"))
    allow_methods: str = Field("", validation_alias=_env("KG_ALLOW_METHODS", "allow_methods"))
    expose_headers: str = Field("", validation_alias=_env("KG_EXPOSE_HEADERS", "expose_headers"))
    max_age: str = Field("", validation_alias=_env("KG_MAX_AGE", "max_age"))

    max_kernels: int | None = Field(None, ge=1, validation_alias=_env("KG_MAX_KERNELS", "max_kernels"))
    prespawn_count: int | None = Field(
        None, ge=0, validation_alias=_env("KG_PRESPAWN_COUNT", "prespawn_count")
    )
    seed_uri: str | None = Field(None, validation_alias=_env("KG_SEED_URI", "seed_uri"))
    default_kernel_name: str = Field(
        "", validation_alias=_env("KG_DEFAULT_KERNEL_NAME", "default_kernel_name")
    )
    force_kernel_name: str = Field("", validation_alias=_env("KG_FORCE_KERNEL_NAME", "force_kernel_name"))
    list_kernels: bool = Field(False, validation_alias=_env("KG_LIST_KERNELS", "list_kernels"))
    env_whitelist: CommaList = Field(
        default_factory=list, validation_alias=_env("KG_ENV_WHITELIST", "env_whitelist")
    )
    env_process_whitelist: CommaList = Field(
        default_factory=list, validation_alias=_env("KG_ENV_PROCESS_WHITELIST", "env_process_whitelist")
    )
    api: CommaList = Field(
        default_factory=lambda: [Personality.JUPYTER_WEBSOCKET.value], validation_alias=_env("KG_API", "api")
    )

    certfile: str | None = Field(None, validation_alias=_env("KG_CERTFILE", "certfile"))
    keyfile: str | None = Field(None, validation_alias=_env("KG_KEYFILE", "keyfile"))
    client_ca: str | None = Field(None, validation_alias=_env("KG_CLIENT_CA", "client_ca"))
    # KG's ssl_version: an ssl.PROTOCOL_* number for the server's SSLContext (unset: TLS 1.2 or 1.3)
    ssl_version: int | None = Field(None, validation_alias=_env("KG_SSL_VERSION", "ssl_version"))
    trust_xheaders: bool = Field(False, validation_alias=_env("KG_TRUST_XHEADERS", "trust_xheaders"))
    ws_ping_interval: float = Field(
        30.0, ge=0, validation_alias=_env("KG_WS_PING_INTERVAL_SECS", "ws_ping_interval")
    )

    # notebook-http (KG names)
    allow_notebook_download: bool = Field(
        False, validation_alias=_env("KG_ALLOW_NOTEBOOK_DOWNLOAD", "allow_notebook_download")
    )
    static_path: str | None = Field(None, validation_alias=_env("KG_STATIC_PATH", "static_path"))
    cell_parser: str = Field(
        CellParser.ANNOTATIONS.value, validation_alias=_env("KG_CELL_PARSER", "cell_parser")
    )

    # fastkg's own options
    warm_pool: int = Field(0, ge=0, validation_alias=_env("FASTKG_WARM_POOL", "warm_pool"))
    request_timeout: float = Field(
        60.0, gt=0, validation_alias=_env("FASTKG_REQUEST_TIMEOUT", "request_timeout")
    )
    max_request_body: int = Field(
        10 * 1024 * 1024, gt=0, validation_alias=_env("FASTKG_MAX_REQUEST_BODY", "max_request_body")
    )
    max_rest_body: int = Field(
        1024 * 1024, gt=0, validation_alias=_env("FASTKG_MAX_REST_BODY", "max_rest_body")
    )
    kernel_start_timeout: float = Field(
        60.0, gt=0, validation_alias=_env("FASTKG_KERNEL_START_TIMEOUT", "kernel_start_timeout")
    )
    replay_seconds: float = Field(
        60.0, ge=0, validation_alias=_env("FASTKG_REPLAY_SECONDS", "replay_seconds")
    )
    # notebook services (KG_API=...,services)
    services_root: str | None = Field(None, validation_alias=_env("FASTKG_SERVICES_ROOT", "services_root"))
    services_dir: str | None = Field(None, validation_alias=_env("FASTKG_SERVICES_DIR", "services_dir"))
    state_dir: str | None = Field(None, validation_alias=_env("FASTKG_STATE_DIR", "state_dir"))
    services_poll: float = Field(1.0, gt=0, validation_alias=_env("FASTKG_SERVICES_POLL", "services_poll"))
    services_versions: int = Field(
        10, ge=1, validation_alias=_env("FASTKG_SERVICES_VERSIONS", "services_versions")
    )
    services_drain: float = Field(
        30.0, ge=0, validation_alias=_env("FASTKG_SERVICES_DRAIN", "services_drain")
    )
    services_pool_min: int = Field(
        1, ge=1, validation_alias=_env("FASTKG_SERVICES_POOL_MIN", "services_pool_min")
    )
    services_pool_max: int = Field(
        4, ge=1, validation_alias=_env("FASTKG_SERVICES_POOL_MAX", "services_pool_max")
    )
    services_pool_limit: int = Field(
        32, ge=1, validation_alias=_env("FASTKG_SERVICES_POOL_LIMIT", "services_pool_limit")
    )
    services_shrink_after: float = Field(
        60.0, gt=0, validation_alias=_env("FASTKG_SERVICES_SHRINK_AFTER", "services_shrink_after")
    )
    services_max_upload: int = Field(
        16 * 1024 * 1024, gt=0, validation_alias=_env("FASTKG_SERVICES_MAX_UPLOAD", "services_max_upload")
    )
    jobs_max: int = Field(100, ge=1, validation_alias=_env("FASTKG_JOBS_MAX", "jobs_max"))
    jobs_ttl: float = Field(300.0, gt=0, validation_alias=_env("FASTKG_JOBS_TTL", "jobs_ttl"))

    replay_sessions: int = Field(1, ge=0, validation_alias=_env("FASTKG_REPLAY_SESSIONS", "replay_sessions"))
    replay_bytes: int = Field(
        64 * 1024 * 1024, ge=0, validation_alias=_env("FASTKG_REPLAY_BYTES", "replay_bytes")
    )
    # remote kernels: deadlines for kernels that may live on other hosts, and several replicas
    interrupt_timeout: float = Field(
        10.0, gt=0, validation_alias=_env("FASTKG_INTERRUPT_TIMEOUT", "interrupt_timeout")
    )
    shutdown_timeout: float = Field(
        15.0, gt=0, validation_alias=_env("FASTKG_SHUTDOWN_TIMEOUT", "shutdown_timeout")
    )
    kernel_poll_interval: float = Field(
        1.0, gt=0, validation_alias=_env("FASTKG_KERNEL_POLL_INTERVAL", "kernel_poll_interval")
    )
    # Local kernels' ports: `auto` (below the ephemeral range), `lower..upper`, or `0..0` (random ephemeral
    # ports, jupyter_client's choice); parsed into bounds, None for auto.
    kernel_port_range: tuple[int, int] | None = Field(
        None, validation_alias=_env("FASTKG_KERNEL_PORT_RANGE", "kernel_port_range")
    )
    kernel_id_prefix: str = Field(
        "", pattern=r"^[0-9a-f]{0,8}$", validation_alias=_env("FASTKG_KERNEL_ID_PREFIX", "kernel_id_prefix")
    )
    # Enterprise Gateway's multi-tenant options, by KERNEL_USERNAME (EG's own names are accepted too)
    max_kernels_per_user: int | None = Field(
        None,
        validation_alias=_env(
            "FASTKG_MAX_KERNELS_PER_USER", "EG_MAX_KERNELS_PER_USER", "max_kernels_per_user"
        ),
    )
    authorized_users: CommaList = Field(
        default_factory=list,
        validation_alias=_env("FASTKG_AUTHORIZED_USERS", "EG_AUTHORIZED_USERS", "authorized_users"),
    )
    unauthorized_users: CommaList = Field(
        default_factory=list,
        validation_alias=_env("FASTKG_UNAUTHORIZED_USERS", "EG_UNAUTHORIZED_USERS", "unauthorized_users"),
    )
    debug: bool = Field(False, validation_alias=_env("FASTKG_DEBUG", "debug"))
    log_level: str = Field("INFO", validation_alias=_env("FASTKG_LOG_LEVEL", "log_level"))
    log_format: LogFormat = Field(LogFormat.PLAIN, validation_alias=_env("FASTKG_LOG_FORMAT", "log_format"))

    # operations: idle culling (jupyter_server's MappingKernelManager.cull_* semantics), metrics, admin
    cull_idle_timeout: float = Field(
        0, validation_alias=_env("FASTKG_CULL_IDLE_TIMEOUT", "cull_idle_timeout")
    )
    cull_interval: float = Field(300, validation_alias=_env("FASTKG_CULL_INTERVAL", "cull_interval"))
    cull_connected: bool = Field(False, validation_alias=_env("FASTKG_CULL_CONNECTED", "cull_connected"))
    cull_busy: bool = Field(False, validation_alias=_env("FASTKG_CULL_BUSY", "cull_busy"))
    metrics: bool = Field(True, validation_alias=_env("FASTKG_METRICS", "metrics"))
    metrics_public: bool = Field(False, validation_alias=_env("FASTKG_METRICS_PUBLIC", "metrics_public"))
    admin: AdminMode = Field(AdminMode.AUTO, validation_alias=_env("FASTKG_ADMIN", "admin"))
    admin_login_attempts: int = Field(
        10, ge=1, validation_alias=_env("FASTKG_ADMIN_LOGIN_ATTEMPTS", "admin_login_attempts")
    )
    admin_login_window: float = Field(
        60.0, gt=0, validation_alias=_env("FASTKG_ADMIN_LOGIN_WINDOW", "admin_login_window")
    )

    @field_validator(
        "env_whitelist",
        "env_process_whitelist",
        "api",
        "authorized_users",
        "unauthorized_users",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("ssl_version")
    @classmethod
    def _server_protocol(cls, value: int | None) -> int | None:
        """A protocol a server context can use: PROTOCOL_TLS (2), TLSv1 (3), TLSv1_1 (4), TLSv1_2 (5) or
        TLS_SERVER (16)."""
        if value is not None and value not in (2, 3, 4, 5, 16):
            raise ValueError(
                f"KG_SSL_VERSION {value} is no server protocol; use 2, 3, 4, 5 or 16 (ssl.PROTOCOL_*)"
            )
        return value

    @field_validator("kernel_port_range", mode="before")
    @classmethod
    def _port_range(cls, value: object) -> object:
        """`auto`, `0..0` or `lower..upper` (Enterprise Gateway's port_range spelling)."""
        if not isinstance(value, str):
            return value
        if value.strip() in ("", "auto"):
            return None
        lower_text, sep, upper_text = value.partition("..")
        try:
            lower, upper = int(lower_text), int(upper_text)
        except ValueError:
            raise ValueError(f"a port range is 'auto', '0..0' or 'lower..upper', not {value!r}") from None
        if (lower, upper) != (0, 0) and not (sep and lower >= 1024 and lower + 4 <= upper <= 65535):
            raise ValueError(f"invalid port range {value!r}: need 1024 <= lower, lower + 4 <= upper <= 65535")
        return (lower, upper)

    @field_validator("max_kernels_per_user")
    @classmethod
    def _per_user_limit(cls, value: int | None) -> int | None:
        """EG's -1 (any negative number) disables the limit."""
        return None if value is None or value < 0 else value

    @field_validator("api")
    @classmethod
    def _known_personalities(cls, value: list[str]) -> list[str]:
        """Built-in names are made canonical; any other name is a plug-in, found when the gateway starts."""
        resolved: list[str] = []
        for name in value or [Personality.JUPYTER_WEBSOCKET.value]:
            personality = _PERSONALITY_NAMES.get(name)
            if personality is None and not _is_plugin_name(name):
                known = ", ".join(sorted(_PERSONALITY_NAMES))
                raise ValueError(f"unknown API {name!r}; known: {known}, or a plug-in module or entry point")
            canonical = personality.value if personality else name
            if canonical not in resolved:
                resolved.append(canonical)
        return resolved

    @field_validator("cell_parser")
    @classmethod
    def _known_cell_parser(cls, value: str) -> str:
        parser = _CELL_PARSER_NAMES.get(value)
        if parser is None:
            raise ValueError(f"unknown cell parser {value!r}; known: {', '.join(sorted(_CELL_PARSER_NAMES))}")
        return parser.value

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        return "/" + value.strip("/") if value.strip("/") else ""

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (
            self.max_kernels is not None
            and self.prespawn_count is not None
            and self.prespawn_count > self.max_kernels
        ):
            raise ValueError(
                f"prespawn count ({self.prespawn_count}) exceeds max kernels ({self.max_kernels})"
            )
        if Personality.NOTEBOOK_HTTP.value in self.api and not self.seed_uri:
            raise ValueError("the notebook-http API needs a notebook: set KG_SEED_URI")
        return self

    @property
    def personalities(self) -> list[Personality]:
        """The built-in APIs to serve."""
        return [Personality(name) for name in self.api if name in _BUILT_IN]

    @property
    def plugin_apis(self) -> list[str]:
        """Plug-in personalities to serve: entry-point names (group fastkg.personalities) or module names."""
        return [name for name in self.api if name not in _BUILT_IN]

    @property
    def token(self) -> str | None:
        return self.auth_token.get_secret_value() if self.auth_token else None

    @property
    def admin_enabled(self) -> bool:
        """FASTKG_ADMIN; `auto` serves the page when a token guards it or only this host can reach it."""
        if self.admin is AdminMode.AUTO:
            return bool(self.token) or self.ip.startswith(("127.", "::1", "localhost"))
        return self.admin is AdminMode.ON

    @property
    def parser(self) -> CellParser:
        return CellParser(self.cell_parser)
