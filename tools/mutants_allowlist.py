"""The allow-list of equivalent mutants (``tools/mutants-equivalent.txt``): reading and matching.

mutmut names a mutant by its function and its number within that function
(``cloudsweep.notify.urls.x__parse__mutmut_94``), and the numbers shift whenever the function is
edited anywhere. An allow-list by number would then excuse the wrong mutant, or stop excusing
the right one and fail unrelated merges. So an entry names the mutant by what it changes: its
function (mutmut's name without the number) and the lines its diff removes and adds, with
whitespace collapsed. Such an entry still matches after edits elsewhere in the function, and stops
matching when the mutated line itself changes (then the mutant must be judged again).

File format, one entry a line::

    # a comment line: the reason for the entries below it
    cloudsweep.notify.urls.x__parse: host = host.encode("idna") ==> host = host.encode("IDNA")
    cloudsweep.notify.urls.x__parse__mutmut_94      # the older form: a bare mutant name

A line holding ``==>`` is a diff entry (``<function>: <removed> ==> <added>``); only whole
lines starting with ``#`` are comments there, as code may hold ``#``. Any other line is a bare
mutant name, as the list was first written (and still is, by engineers adding equivalents
today), with an optional ``#`` comment after it; those are converted to diff entries later.
"""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = " ==> "


@dataclass(frozen=True)
class Allowlist:
    names: frozenset[str]  # bare mutmut names (the older form: matches that number only)
    keys: frozenset[str]  # diff entries, as ``key`` builds them

    def allows(self, name: str, diff: str | None) -> bool:
        """Whether the mutant ``name``, whose diff is ``diff`` (None: unknown), is listed."""
        if name in self.names:
            return True
        return diff is not None and key(name, diff) in self.keys


def function_of(name: str) -> str:
    """The mutant's function: its mutmut name without ``__mutmut_<number>``."""
    return name.rsplit("__mutmut_", 1)[0]


def _collapse(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())


def key(name: str, diff: str) -> str:
    """The stable entry for a mutant: its function and the lines its diff removes and adds.

    ``diff`` is mutmut's (``mutmut show``, or only its ``-``/``+`` lines): file headers and
    context lines are ignored, so neither the line numbers nor the rest of the function count.
    """
    removed = []
    added = []
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            removed.append(line[1:])
        elif line.startswith("+"):
            added.append(line[1:])
    return _entry(function_of(name), _collapse(removed), _collapse(added))


def _entry(function: str, removed: str, added: str) -> str:
    return f"{function}: {removed}{SEPARATOR}{added}"


def parse(text: str) -> Allowlist:
    """Read the allow-list's text: diff entries and bare names, comments skipped."""
    names = set()
    keys = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if SEPARATOR.strip() in line:
            function, _, change = line.partition(":")
            removed, _, added = change.partition(SEPARATOR.strip())
            # Normalised like ``key``, so hand-written spacing does not matter.
            keys.add(_entry(function.strip(), _collapse([removed]), _collapse([added])))
        else:
            names.add(line.split("#", 1)[0].strip())
    return Allowlist(frozenset(names - {""}), frozenset(keys))
