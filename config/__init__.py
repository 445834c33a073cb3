# Makes default.toml importable as `revivatech_actors._config` (see pyproject.toml), so an installed
# package reads the same defaults operators read here. Nothing else belongs here.
