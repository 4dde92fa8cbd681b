"""gateway: the public REST surface (DESIGN.md §4). Not built yet: issue 5."""
