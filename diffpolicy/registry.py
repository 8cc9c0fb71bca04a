"""Extension by registration: a name -> entry table that user code adds to, like gymnasium's
`register(id, entry_point)` / `make(id)`.

The agent chooses its actor objective, sampler and critic by name from three registries
(`diffpolicy.rl.agent.components`); a name registered before a config is built is valid everywhere a
built-in one is, the command line included, with no edit to the library.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """Entries of one kind ("objective", "sampler", ...) by name, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, entry: Entry, replace: bool = False) -> Entry:
        """Add `entry` under `name`. Registering a taken name raises ValueError unless `replace`:
        two plug-ins silently claiming one name would make a config mean two things."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(
                f"{self.kind} {name!r} is already registered (pass replace=True to override it)"
            )
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove `name` (KeyError if absent); tests use it to clean up after themselves."""
        del self._entries[name]

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self):
        return self._entries.items()
