# Makes the migrations importable as `revivatech_actors._sql` (see pyproject.toml), so an installed
# package finds them with importlib.resources. Nothing else belongs here.
