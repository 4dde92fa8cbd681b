"""control: the platform's tunables, their effective values and history, and the one way to
change them (a validated ConfigChanged on `control`, DESIGN.md §3-4).

Light on purpose: the entry points name modules inside the package (`service.py`,
`commands.py`), so reading a declaration never loads the whole service."""
