"""Settings: defaults from ``config/default.toml``, then a config file, then ``REVIVATECH_*``
environment variables, then overrides (docs/operations.md).

Every setting is a typed field of a frozen attrs class, one class per TOML table. What is
guaranteed: :func:`load_settings` returns fully validated, hashable settings or raises one
:class:`ConfigError` whose message is one line naming the setting, the problem and where the
value came from, and never holds a secret; :func:`settings_as_dict` masks every secret unless
told not to, and :func:`render_toml` of it loads back to equal settings.

Where things live: ``_sections.py`` the tables but [scoring], ``_scoring.py`` the [scoring]
tables and their old flat names, ``_settings.py`` the whole and the rules across sections,
``_checks.py`` the validators, ``_convert.py`` raw values to typed ones, ``_load.py`` the
loader, ``_show.py`` the masked dict and the TOML writer.
"""

from ._checks import SHARE_RULE, is_host, is_share
from ._errors import ConfigError
from ._load import env_var_name, load_settings
from ._scoring import (
    ChurnSettings,
    EngagementSettings,
    LeadSettings,
    PriceSensitivitySettings,
    ScoringSettings,
)
from ._sections import (
    AuthSettings,
    BatchSettings,
    BroadcastSettings,
    CorsSettings,
    FaultSettings,
    FunnelSettings,
    IngestSettings,
    LimitSettings,
    LogSettings,
    MetricsSettings,
    ProfileSettings,
    RealtimeSettings,
    RedisSettings,
    RetentionSettings,
    ShutdownSettings,
    StorageSettings,
    SupervisorSettings,
    WebSettings,
)
from ._settings import Settings
from ._show import render_toml, settings_as_dict

__all__ = [
    "SHARE_RULE",
    "AuthSettings",
    "BatchSettings",
    "BroadcastSettings",
    "ChurnSettings",
    "ConfigError",
    "CorsSettings",
    "EngagementSettings",
    "FaultSettings",
    "FunnelSettings",
    "IngestSettings",
    "LeadSettings",
    "LimitSettings",
    "LogSettings",
    "MetricsSettings",
    "PriceSensitivitySettings",
    "ProfileSettings",
    "RealtimeSettings",
    "RedisSettings",
    "RetentionSettings",
    "ScoringSettings",
    "Settings",
    "ShutdownSettings",
    "StorageSettings",
    "SupervisorSettings",
    "WebSettings",
    "env_var_name",
    "is_host",
    "is_share",
    "load_settings",
    "render_toml",
    "settings_as_dict",
]
